"""Synod oracle (placeholder package: see the issues)."""
