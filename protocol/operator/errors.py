"""Operator errors: each message is a sentence that says what is wrong and what to do about it.

::

    SynodError
    ├── ConfigError
    │   ├── ConfigFileError       config file missing, unreadable, not TOML, or a bad value
    │   ├── AmountError           (amounts.py) text that is not a usable token amount
    │   └── PasswordError         no password source, or an unreadable password file
    └── ChainError
        ├── SignerError
        │   └── WrongPassword     the keystore's MAC does not match: the password is wrong
        └── OperatorError         the account's on-chain state does not allow the action
            ├── StartRefused      wrong chain, no contract code, unreachable RPC: nothing was sent
            └── AccountStateError not registered, wrong role, under-staked, unbonding, ...

Nothing here holds key material; messages carry addresses, amounts and commands only.
"""

from __future__ import annotations

from protocol.chain.errors import ChainError, SignerError
from protocol.errors import ConfigError


class ConfigFileError(ConfigError):
    """The operator config cannot be used; the message names the file, the field and the reason."""


class PasswordError(ConfigError):
    """No way to get a keystore password (no file, no env var, no terminal), or an unreadable file."""


class WrongPassword(SignerError):
    """The keystore decrypted with a MAC mismatch: the password is wrong."""


class OperatorError(ChainError):
    """The chain does not allow what the operator asked for; nothing was sent."""


class StartRefused(OperatorError):
    """The configured chain is not the deployment's chain, the contracts have no code, or the RPC
    endpoint cannot be reached: refused before reading or sending anything else."""


class AccountStateError(OperatorError):
    """The account's registration does not allow the action (the message says which command fixes it)."""
