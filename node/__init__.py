"""Synod node (placeholder package: see the issues)."""
