"""The compute node's Prometheus metrics, on its own registry (:func:`protocol.metrics.new_registry`).

Amounts are token base units (a float counter: exact to 2**53 base units per series, which is the
Prometheus data model's limit; the chain and ``synod node rewards`` hold the exact figures).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from node.decider import SKIP_REASONS


class NodeMetrics:
    """Every series ``synod node run`` exports (names below, ``_total`` added to counters)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.batches_seen = Counter(
            "synod_node_batches_seen", "batches posted (BatchPosted)", registry=registry
        )
        self.batches_taken = Counter("synod_node_batches_taken", "batches taken", registry=registry)
        self.batches_skipped = Counter(
            "synod_node_batches_skipped", "batches not taken, by reason", ["reason"], registry=registry
        )
        for reason in SKIP_REASONS:
            self.batches_skipped.labels(reason=reason)
        self.batches_abandoned = Counter(
            "synod_node_batches_abandoned",
            "batches taken then given up (see the log's reason)",
            registry=registry,
        )
        self.batches_deferred = Counter(
            "synod_node_batches_deferred",
            "batches this node waited on as a backup of the work split (node/split.py)",
            registry=registry,
        )
        self.split_saved = Counter(
            "synod_node_split_skipped",
            "deferred batches whose seats the owners filled: skipped without running a row",
            registry=registry,
        )
        self.tasks = Counter("synod_node_tasks", "tasks run, by outcome", ["outcome"], registry=registry)
        self.workflow_seconds = Histogram(
            "synod_node_workflow_seconds",
            "seconds per task (workflow run)",
            buckets=(0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.commits = Counter("synod_node_commits", "commits mined", registry=registry)
        self.reveals = Counter("synod_node_reveals", "reveals mined", registry=registry)
        self.paid = Counter(
            "synod_node_paid_base_units", "credited by settlements (base units)", registry=registry
        )
        self.slashed = Counter("synod_node_slashed", "times this node was slashed", registry=registry)
        self.slashed_amount = Counter(
            "synod_node_slashed_base_units", "stake slashed (base units)", registry=registry
        )
        self.earnings = Counter("synod_node_claimed_base_units", "claimed (base units)", registry=registry)
        self.rpc_errors = Counter(
            "synod_node_rpc_errors", "RPC failures seen by the node's services", registry=registry
        )
        self.watcher_lag = Gauge(
            "synod_node_watcher_lag_blocks", "confirmed head minus processed block", registry=registry
        )
        self.open_batches = Gauge(
            "synod_node_open_batches", "batches taken and not finished", registry=registry
        )
