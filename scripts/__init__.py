"""Developer scripts: devnet helpers, ``make demo``, ``make bench`` (``python -m scripts.<name>``)."""
