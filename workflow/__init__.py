"""Synod's workflow engine: Ollama-Workflows-compatible programs run on local LLMs.

Layering: ``workflow`` imports only ``protocol``; ``node`` and ``oracle`` import ``workflow``.
"""
