"""How a daemon command (``synod node run``, ``synod oracle run``) leaves the process.

When the daemon's trio run has returned, everything durable is closed (journal and state files are
SQLite with ``synchronous=FULL``, committed per write). What may remain is a worker thread that
cannot be interrupted: a blocking receipt wait or an embedding call that trio abandoned at
cancellation. A normal interpreter exit can then hang on it (daemons were seen alive 20 s after
logging ``*_stopped`` under load), and a supervisor such as ``synod devnet down`` has to SIGKILL
them. So the daemon flushes its logs and output and ends the process with ``os._exit``.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import suppress
from typing import NoReturn


def exit_daemon(code: int) -> NoReturn:
    """Flush logging and stdio, then end the process at once with exit status ``code``
    (0..255), without waiting for leftover threads or running ``atexit`` hooks."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a closed or broken pipe: nothing more to say on it
            stream.flush()
    os._exit(code)
