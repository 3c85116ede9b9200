"""The one exception root of Synod.

Every error Synod raises on purpose derives from :class:`SynodError`::

    SynodError
    ├── ConfigError            bad settings or command-line input
    ├── CanonicalError         a value that has no canonical JSON form
    ├── ChainError             (protocol.chain) RPC, transaction and contract errors
    │   └── ContractRevert     a custom error decoded from the ABI
    └── WorkflowError          (workflow) invalid programs, provider and tool failures

Sub-packages add their own branches under these; they never raise bare ``Exception``.
"""

from __future__ import annotations


class SynodError(Exception):
    """Root of every error Synod raises on purpose."""


class ConfigError(SynodError):
    """Settings or command-line input that cannot be used."""


class CanonicalError(SynodError, ValueError):
    """A value that has no canonical JSON form (NaN, a non-string key, an unknown type)."""
