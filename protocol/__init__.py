"""Synod protocol core: shared by every role (node, oracle, cli).

This package imports nothing from ``node``, ``oracle``, ``cli`` or ``workflow``; a test enforces it.
"""
