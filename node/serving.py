"""The node's memory for serving results over p2p: which revealed batch holds a digest, the bytes,
and each batch's committee per draw round.

A committee member fetches a whole batch over one stream (:mod:`protocol.p2p.wire`), and every
member of a batch's committee fetches every revealed result of it. The result server asks the
node's access rule and lookup once per digest; answering each from sqlite cost three thread hops
(``batches_of_digest``, the batch record, the job record) plus one for the bytes. This module keeps:

* :class:`ServingCache` batches: for each batch this node REVEALED (its rows are final: their
  digests are on chain), its requester and ``digest -> bytes`` of every row, loaded in ONE thread
  hop the first time a request for one of its digests is ADMITTED (:func:`load_batch`; a
  refused request reads batch records only, :func:`revealed_of`), kept least recently
  used first out within ``max_bytes`` (a batch larger than that is never kept: the caller falls
  back to the journal). Only bytes and the digest -> batch index live here; whether a request is
  admitted is still decided by the caller's rule on the chain's phase (results are never served
  before the reveals closed);
* committees per (batch, round): the validator set of the batch's current draw round, so an
  access check after the round is known needs one ``batch`` view, not ``committee_size`` more
  seat reads. Invalidation: an entry is used only for the round the chain names at the check's
  block; a re-draw raises the round (``TaskMarket._rescore``), so the old committee's entry is
  never consulted again, and :meth:`ServingCache.forget_committee` drops a batch's entries when a
  check sees it outside the scoring phases (Drawing between rounds, Settled, ended). A reorg that
  removes a batch drops everything kept of it (:meth:`ServingCache.forget`, called by the node's
  rewind): batch ids are the market's counter, so the new chain may reuse the id for another batch.

Everything is bounded: ``max_bytes`` of result bytes, ``max_batches`` batches, ``max_committees``
committee entries, least recently used out first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from node.state import BatchStatus, NodeState
from protocol.chain.market import Market
from protocol.chain.models import Phase
from protocol.chain.rpc import BlockRef
from protocol.store import Store
from protocol.types import Address

_SCORING = frozenset({Phase.SCORE_COMMITTING, Phase.SCORE_REVEALING})


@dataclass(frozen=True)
class ServedBatch:
    """A batch this node revealed: its id, the job's ``requester`` (``None`` if the job record is
    gone) and ``results`` (digest -> the stored envelope bytes of its rows). ``complete`` False:
    loading stopped at the byte bound (:func:`load_revealed`), ``results`` is partial and the batch
    is never kept."""

    batch_id: int
    requester: str | None
    results: dict[bytes, bytes]
    complete: bool = True

    @property
    def size(self) -> int:
        """Result bytes held, in bytes."""
        return sum(len(v) for v in self.results.values())


class ServingCache:
    """Revealed batches' results by digest and committees by (batch, round), in memory.

    ``max_bytes``: result bytes kept over all batches; ``max_batches``: batches kept;
    ``max_committees``: (batch, round) committee entries kept. Not thread-safe: use it from the
    daemon's trio thread only.
    """

    def __init__(
        self, max_bytes: int = 64 * 1024 * 1024, max_batches: int = 256, max_committees: int = 1024
    ) -> None:
        self.max_bytes = max_bytes
        self.max_batches = max_batches
        self.max_committees = max_committees
        self._batches: OrderedDict[int, ServedBatch] = OrderedDict()
        self._by_digest: dict[bytes, set[int]] = {}
        self._bytes = 0
        self._committees: OrderedDict[tuple[int, int], frozenset[Address]] = OrderedDict()
        self._oversize: OrderedDict[int, None] = OrderedDict()

    # ------------------------------------------------------------------ results

    @property
    def held_bytes(self) -> int:
        """Result bytes held now."""
        return self._bytes

    def batches_of(self, digest: bytes) -> list[ServedBatch]:
        """The kept batches holding ``digest`` (empty when none is kept: ask the journal)."""
        ids = self._by_digest.get(bytes(digest), ())
        out = []
        for batch_id in ids:
            self._batches.move_to_end(batch_id)
            out.append(self._batches[batch_id])
        return out

    def result(self, digest: bytes) -> bytes | None:
        """The bytes of ``digest`` if a kept batch holds them."""
        for batch_id in self._by_digest.get(bytes(digest), ()):
            data = self._batches[batch_id].results.get(bytes(digest))
            if data is not None:
                return data
        return None

    @property
    def oversize(self) -> frozenset[int]:
        """Batches found larger than ``max_bytes`` (at most ``max_batches`` remembered): never
        loaded again, the caller decides and serves them from the journal."""
        return frozenset(self._oversize)

    def add(self, batch: ServedBatch) -> bool:
        """Keep ``batch`` (replacing a kept one of the same id); False if it alone exceeds
        ``max_bytes`` or is not ``complete`` (then it is not kept and is remembered in
        :attr:`oversize`). Evicts least recently used batches to fit."""
        size = batch.size
        if size > self.max_bytes or not batch.complete:
            self._oversize[batch.batch_id] = None
            self._oversize.move_to_end(batch.batch_id)
            while len(self._oversize) > self.max_batches:
                self._oversize.popitem(last=False)
            return False
        self.drop(batch.batch_id)
        while self._batches and (
            self._bytes + size > self.max_bytes or len(self._batches) >= self.max_batches
        ):
            self.drop(next(iter(self._batches)))
        self._batches[batch.batch_id] = batch
        self._bytes += size
        for digest in batch.results:
            self._by_digest.setdefault(digest, set()).add(batch.batch_id)
        return True

    def drop(self, batch_id: int) -> None:
        """Forget a batch's results (nothing if it is not kept)."""
        batch = self._batches.pop(batch_id, None)
        if batch is None:
            return
        self._bytes -= batch.size
        for digest in batch.results:
            ids = self._by_digest.get(digest)
            if ids is not None:
                ids.discard(batch_id)
                if not ids:
                    del self._by_digest[digest]

    # ------------------------------------------------------------------ committees

    def committee(self, batch_id: int, round_: int) -> frozenset[Address] | None:
        """The kept committee of ``batch_id``'s draw round ``round_``, or ``None``."""
        members = self._committees.get((batch_id, round_))
        if members is not None:
            self._committees.move_to_end((batch_id, round_))
        return members

    def remember_committee(
        self, batch_id: int, round_: int, members: Iterable[Address]
    ) -> frozenset[Address]:
        """Keep the committee of (``batch_id``, ``round_``) (the zero address left out); returns it.
        Entries of the batch's earlier rounds are dropped."""
        for key in [k for k in self._committees if k[0] == batch_id and k[1] != round_]:
            del self._committees[key]
        kept = frozenset(m for m in members if int(m, 16) != 0)
        self._committees[(batch_id, round_)] = kept
        self._committees.move_to_end((batch_id, round_))
        while len(self._committees) > self.max_committees:
            self._committees.popitem(last=False)
        return kept

    def rounds_of(self, batch_id: int) -> dict[int, frozenset[Address]]:
        """A copy of the kept committees of ``batch_id`` by round (for :func:`read_admission`)."""
        return {r: m for (b, r), m in self._committees.items() if b == batch_id}

    def forget_committee(self, batch_id: int) -> None:
        """Drop every committee entry of ``batch_id`` (its phase left the scoring phases)."""
        for key in [k for k in self._committees if k[0] == batch_id]:
            del self._committees[key]

    def forget_committees(self) -> None:
        """Drop every committee entry (a reorg: a draw above the fork may be re-drawn under the
        same (batch, round) with another seed; entries are re-read on the next check)."""
        self._committees.clear()

    def forget(self, batch_id: int) -> None:
        """Forget everything kept of ``batch_id``: its results, committees and oversize mark (a
        reorg removed the batch; the new chain may post another batch under the same id)."""
        self.drop(batch_id)
        self.forget_committee(batch_id)
        self._oversize.pop(batch_id, None)


def revealed_of(
    state: NodeState, digest: bytes, skip: Iterable[int] = ()
) -> tuple[list[int], list[tuple[int, str | None]]]:
    """Blocking (run it in a worker thread): the batches whose rows hold ``digest`` (all of them,
    as :meth:`NodeState.batches_of_digest`), and ``(batch_id, requester)`` of each that this node
    REVEALED and that is not in ``skip`` (``requester`` ``None`` if the job record is gone). Reads
    records only, never result bytes: enough for the access decision."""
    ids = state.batches_of_digest(bytes(digest))
    kept = frozenset(skip)
    found: list[tuple[int, str | None]] = []
    for batch_id in ids:
        if batch_id in kept:
            continue
        record = state.batch(batch_id)
        if record is None or record.status is not BatchStatus.REVEALED:
            continue
        job = state.job(record.job_id)
        found.append((batch_id, None if job is None else job.requester))
    return ids, found


def load_batch(
    state: NodeState, store: Store, batch_id: int, requester: str | None, max_bytes: int | None = None
) -> ServedBatch:
    """Blocking: the :class:`ServedBatch` of ``batch_id`` with every row's bytes from the journal
    (rows without stored bytes are left out). With ``max_bytes``, loading stops at the first row
    that takes the bytes past it (``complete`` False, no results): a batch too large to keep is
    never read whole."""
    results: dict[bytes, bytes] = {}
    held = 0
    for task in state.tasks(batch_id).values():
        key = bytes(task.digest)
        if key in results:
            continue
        data = store.get_result_sync(key)
        if data is not None:
            results[key] = data
            held += len(data)
            if max_bytes is not None and held > max_bytes:
                return ServedBatch(batch_id, requester, {}, complete=False)
    return ServedBatch(batch_id, requester, results)


def load_revealed(
    state: NodeState,
    store: Store,
    digest: bytes,
    skip: Iterable[int] = (),
    max_bytes: int | None = None,
) -> tuple[list[int], list[ServedBatch]]:
    """Blocking: :func:`revealed_of`, each found batch loaded by :func:`load_batch` (for callers
    that want the bytes whatever the access decision; the node's access rule loads a batch only
    once a request for it was admitted)."""
    ids, found = revealed_of(state, digest, skip)
    return ids, [load_batch(state, store, b, r, max_bytes) for b, r in found]


@dataclass(frozen=True)
class Admission:
    """What the chain says of a batch at one block: its effective ``phase``; in a scoring phase
    its draw ``round`` and committee ``members`` (``fresh``: read now, not from ``known``);
    otherwise ``round`` None and no members (between rounds and once ended nobody is seated)."""

    phase: Phase
    round: int | None = None
    members: frozenset[Address] = frozenset()
    fresh: bool = False


def read_admission(
    market: Market, batch_id: int, known: Mapping[int, frozenset[Address]], block: BlockRef
) -> Admission:
    """Blocking chain reads at ``block``: ``phaseOf``; in ScoreCommitting/ScoreRevealing also the
    ``batch`` view (the current draw round), and the committee seats only when ``known`` (round ->
    members of this batch) lacks that round. 1, 2 or 2 + committee size ``eth_call`` s; raises
    :class:`~protocol.chain.errors.ChainError`."""
    phase = market.phase(batch_id, block).phase
    if phase not in _SCORING:
        return Admission(phase)
    round_ = market.batch(batch_id, block).round
    members = known.get(round_)
    if members is not None:
        return Admission(phase, round_, members)
    seats = market.committee(batch_id, block)
    return Admission(phase, round_, frozenset(s.validator for s in seats), fresh=True)
