"""The host's persistent peer identity: an Ed25519 key in a 0600 file, created on first use.

The peer id (and so the multiaddr registered on chain) derives from this key, so it must survive
restarts. The file uses libp2p's protobuf private-key format through py-libp2p's own
``save_identity`` / ``load_identity``. A file readable by group or others is refused, as ssh
refuses such a private key. Nothing here logs the key or its bytes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.identity_utils import load_identity, save_identity
from libp2p.peer.id import ID

from protocol.log import get_logger
from protocol.p2p.errors import IdentityError

log = get_logger(__name__)


def load_or_create_identity(path: Path) -> KeyPair:
    """The key pair stored at ``path``; a new Ed25519 one (written 0600) if the file is absent.

    Raises :class:`IdentityError` if the file is readable by group/others, unreadable or corrupt.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key_pair = create_new_key_pair()
        try:
            save_identity(key_pair, path)
        except OSError as exc:
            raise IdentityError(f"cannot write peer key file {path}: {exc.strerror}") from None
        log.info("p2p_identity_created", path=str(path), peer_id=str(ID.from_pubkey(key_pair.public_key)))
        return key_pair
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError as exc:
        raise IdentityError(f"cannot stat peer key file {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise IdentityError(f"peer key file {path} has mode {mode:04o}; it must be 0600 (chmod 600 {path})")
    try:
        key_pair = load_identity(path)
    except OSError as exc:
        raise IdentityError(f"cannot read peer key file {path}: {exc.strerror}") from None
    except ValueError:
        raise IdentityError(f"peer key file {path} is not a libp2p private key") from None
    log.info("p2p_identity_loaded", path=str(path), peer_id=str(ID.from_pubkey(key_pair.public_key)))
    return key_pair
