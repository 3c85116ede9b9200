"""A daemon stand-in for the crash tests: journal a transaction, maybe send it, then hang.

``python -m tests.store.crash_child STORE RPC_URL ACCOUNT MODE`` with MODE ``before_send``
(journal only) or ``after_send`` (journal, then ``eth_sendRawTransaction``, but die before
recording ``sent``). It prints ``READY <tx hash>`` when it has done its part and then waits on
stdin to be SIGKILLed by the test.
"""

from __future__ import annotations

import sys
from pathlib import Path

from web3 import HTTPProvider, Web3

from protocol.store import Store
from tests.store.helpers import key_for, signed_tx

SALT = b"\x5a" * 32
DIGEST = b"\xd1" * 32


def main(store_path: str, rpc_url: str, account: int, mode: str) -> None:
    w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
    store = Store.open_sync(Path(store_path))
    tx = signed_tx(account, nonce=w3.eth.get_transaction_count(key_for(account).participant))
    store.record_intent_sync(key_for(account), tx, salt=SALT, digest=DIGEST)
    if mode == "after_send":
        w3.eth.send_raw_transaction(tx.raw)
    print(f"READY 0x{tx.tx_hash.hex()}", flush=True)
    sys.stdin.read()  # the test kills us here


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
