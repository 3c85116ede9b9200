"""The local network on one machine: Anvil, the contracts, funded accounts, node and validator
processes and a shared model server, as a library that ``synod devnet`` and ``make demo`` use.

- :mod:`devnet.chain`: Anvil, forge build and deploy, and scripted participants driven through the
  facade (``run_batch``) for tests and benches;
- :mod:`devnet.scripted_model`: a zero-latency model server speaking Ollama's HTTP API (a tester
  feature: protocol-only runs and benches);
- :mod:`devnet.network`: the whole network as OS processes under a state directory
  (``up``/``down``/``status``/``logs``).
"""
