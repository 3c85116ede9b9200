"""Moved to :mod:`devnet.chain` (the devnet package); this name stays for the scripts and tests
that import it."""

from devnet.chain import *  # noqa: F403
from devnet.chain import __all__  # noqa: F401
