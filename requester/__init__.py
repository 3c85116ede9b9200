"""The requester role: post a dataset of rows as a job, follow it, export and verify its results.

- :mod:`requester.rows`: read a workflow and a JSONL file of rows; check every row against the
  workflow's entry inputs before anything is sent;
- :mod:`requester.post`: the plan (batches, transactions, escrow) checked against the wallet,
  then approve and post through :meth:`protocol.chain.market.Market.post_job`;
- :mod:`requester.history`: every event of a job read back from the chain (with tx hashes and
  block numbers), the one source status, export and verify read;
- :mod:`requester.status`: a job's progress per phase;
- :mod:`requester.export`: one dataset row per accepted result, its bytes fetched over p2p with
  a signed request and proven against the revealed digest;
- :mod:`requester.verify`: re-check a dataset file against the chain, naming each altered, added
  or dropped row.

Imports ``protocol`` and ``workflow`` only (tests/test_layering.py).
"""
