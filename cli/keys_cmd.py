"""``synod keys``: eth-account encrypted keystores.

::

    synod keys new    [--out FILE | --name NAME] [--password-file FILE]
    synod keys import [--private-key-file FILE] [--out FILE | --name NAME] [--password-file FILE]
    synod keys show   [--keystore FILE | --name NAME] [--check] [--password-file FILE]

Keystores go to ``~/.config/synod/keys/NAME.json`` (``--name``, default ``default``) or ``--out``,
mode 0600, never overwritten. The password comes from ``--password-file``, else
``$SYNOD_KEYSTORE_PASSWORD``, else a prompt (``new`` and ``import`` ask twice). ``import`` reads
the private key (64 hex characters) from ``--private-key-file`` or a prompt, never from the command
line. ``show`` prints the address only (from the file; ``--check`` decrypts to prove the password).
Errors are one line on stderr; exit 2 for a bad argument, password or key file.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_USAGE = 2


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``new``, ``import`` and ``show`` to ``synod keys``."""
    sub = parser.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", required=True)
    where = argparse.ArgumentParser(add_help=False)
    group = where.add_mutually_exclusive_group()
    group.add_argument("--out", type=Path, metavar="FILE", help="keystore file to write")
    group.add_argument(
        "--name", default="default", help="write ~/.config/synod/keys/NAME.json (default: default)"
    )
    password = argparse.ArgumentParser(add_help=False)
    password.add_argument("--password-file", type=Path, metavar="FILE", help="file holding the password")

    new = sub.add_parser("new", parents=[where, password], help="create a new random key")
    new.add_argument(
        "--scrypt-n",
        type=int,
        metavar="N",
        help="scrypt work factor, a power of two (default 2**18; lower only for throwaway devnet keys)",
    )
    imp = sub.add_parser("import", parents=[where, password], help="encrypt an existing private key")
    imp.add_argument("--private-key-file", type=Path, metavar="FILE", help="file holding the key in hex")
    imp.add_argument(
        "--scrypt-n",
        type=int,
        metavar="N",
        help="scrypt work factor, a power of two (default 2**18; lower only for throwaway devnet keys)",
    )
    show = sub.add_parser("show", parents=[password], help="print a keystore's address")
    which = show.add_mutually_exclusive_group()
    which.add_argument("--keystore", type=Path, metavar="FILE", help="keystore file")
    which.add_argument("--name", default="default", help="~/.config/synod/keys/NAME.json (default: default)")
    show.add_argument("--check", action="store_true", help="decrypt it to check the password")


def _path(explicit: Path | None, name: str) -> Path:
    from protocol.operator.config import config_home

    if explicit is not None:
        return explicit.expanduser()
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"--name {name!r}: use a plain file name, or --out FILE")
    return config_home() / "keys" / f"{name}.json"


def run(args: argparse.Namespace) -> int:
    """Run a ``synod keys`` subcommand; errors become one line on stderr."""
    from pydantic import SecretStr

    from protocol.chain.errors import SignerError
    from protocol.errors import ConfigError
    from protocol.operator.keys import (
        keystore_address,
        parse_private_key,
        resolve_password,
        unlock,
        write_keystore,
    )

    prompt = getpass.getpass if sys.stdin.isatty() else None
    try:
        if args.keys_command == "show":
            path = _path(args.keystore, args.name)
            if args.check:
                password = resolve_password(args.password_file, os.environ, prompt=prompt)
                print(unlock(path, password).address)
            else:
                print(keystore_address(path))
            return EXIT_OK
        path = _path(args.out, args.name)
        if path.exists():
            raise SignerError(f"{path} exists: refusing to overwrite a key (choose another --out or --name)")
        key: bytes | None = None
        if args.keys_command == "import":
            if args.private_key_file is not None:
                try:
                    text = SecretStr(args.private_key_file.read_text(encoding="utf-8"))
                except OSError as exc:
                    raise ConfigError(f"cannot read {args.private_key_file}: {exc.strerror}") from None
            elif prompt is not None:
                text = SecretStr(prompt("Private key (hex): "))
            else:
                raise ConfigError(
                    "no private key: pass --private-key-file FILE, or run in a terminal to be asked"
                )
            key = parse_private_key(text.get_secret_value())
        password = resolve_password(args.password_file, os.environ, prompt=prompt, confirm=True)
        address = write_keystore(path, password, key, scrypt_n=args.scrypt_n)
        print(f"{address} {path}")
        return EXIT_OK
    except (ConfigError, SignerError, ValueError) as exc:
        print(f"synod keys: {exc}", file=sys.stderr)
        return EXIT_USAGE
