"""The requester's errors, one root::

    RequesterError (protocol.errors.SynodError)
    ├── InputError        a workflow or rows file that cannot be used (names the row and field)
    ├── FundsError        the wallet cannot cover the escrow (or the gas)
    ├── UnknownJob        no such job on this chain
    └── DatasetError      a dataset file that cannot be read as an export

Every message is a sentence that says what to do.
"""

from __future__ import annotations

from protocol.errors import SynodError


class RequesterError(SynodError):
    """Root of the requester's errors."""


class InputError(RequesterError, ValueError):
    """A workflow or rows file that cannot be posted; the message names the file, row and field."""


class FundsError(RequesterError):
    """The wallet's token balance (or native balance for gas) does not cover the post."""


class UnknownJob(RequesterError, LookupError):
    """The job id does not exist on the connected chain."""


class DatasetError(RequesterError, ValueError):
    """A dataset file that is not an export (unreadable line, wrong shape)."""
