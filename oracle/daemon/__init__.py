"""The validator daemon (``synod oracle run``): watch -> fetch -> score -> commit/reveal -> settle.

:mod:`.config` is the ``[run]`` table of the validator's config file.
"""
