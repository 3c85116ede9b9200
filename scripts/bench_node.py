"""``make bench`` (node part): the compute node daemon's memory at rest and its per-batch overhead.

Prints ``name=value`` lines on stdout (logs go to stderr):

- ``node_idle_rss_mb``: resident memory (``VmRSS``) of a real ``synod node run`` process, started
  on a fresh Anvil with the contracts deployed and the account registered, once it has logged
  ``node_started`` and then idled :data:`IDLE_S` seconds (watcher polling, p2p host listening,
  Ollama provider connected; no batch yet).
- ``node_batch_overhead_ms``: the median, over :data:`BATCHES` batches of :data:`ROWS` rows
  (k = 1), of the time from the ``postJob`` receipt to the daemon's ``node_revealed`` log line:
  watcher pickup, decision, 16 workflow runs on the engine through the Ollama provider against a
  zero-latency scripted model server (devnet/scripted_model.py, `hashed_reply`), storing the envelopes, the
  salt, the commit (simulated, signed, journaled, mined), the phase poll, the reveal (the same).
  Everything but the model. Anvil mines on every transaction; the watcher polls every 50 ms.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from devnet.scripted_model import ScriptedModelServer, hashed_reply
from protocol.chain.contracts import SynodContracts
from protocol.chain.market import Market
from protocol.log import configure
from scripts.devnet import DEMO_MODEL, ROOT, fund_and_register, local_devnet
from scripts.export_abi import export_abis
from tests.node.helpers import MIN_PHASE_S, WORKFLOW, node_home, params, register_node, running

IDLE_S = 3.0
BATCHES = 3
ROWS = 16


def rss_mb(pid: int) -> float:
    """``VmRSS`` of process ``pid`` in MiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def main() -> int:
    configure("WARNING")
    with local_devnet(ROOT, params={"SYNOD_MIN_PHASE_DURATION": str(MIN_PHASE_S)}) as devnet:
        export_abis(ROOT)
        chain = SynodContracts.connect(devnet.settings, ROOT)
        actors, _ = fund_and_register(chain)
        register_node(chain)
        market = Market(chain)
        with (
            ScriptedModelServer(models=[DEMO_MODEL], answer=hashed_reply) as ollama,
            tempfile.TemporaryDirectory() as tmp,
        ):
            run = {
                "provider": {"kind": "ollama", "url": ollama.url},
                "poll_interval_s": 0.05,
                "claim_interval_s": 0,
                "concurrency": 4,
                "metrics": {"port": -1},
            }
            node = node_home(Path(tmp) / "node", devnet, run)
            with running(node) as daemon:
                daemon.wait("node_started", 120)
                time.sleep(IDLE_S)  # measuring the idle state itself
                idle = rss_mb(daemon.process.pid)
                spans = []
                for i in range(BATCHES):
                    rows = [{"topic": f"batch {i} row {r}"} for r in range(ROWS)]
                    posted = market.post_job(actors.requester, params(k=1, batch_size=ROWS), WORKFLOW, rows)
                    started = time.monotonic()
                    (batch,) = posted.batches
                    daemon.wait("node_revealed", 120, contains=f"batch={batch.batch_id} ")
                    spans.append((time.monotonic() - started) * 1000)
                daemon.stop()
            assert ollama.requests == BATCHES * ROWS, ollama.requests
    print(f"node_idle_rss_mb={idle:.1f}")
    print(f"node_batch_overhead_ms={statistics.median(spans):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
