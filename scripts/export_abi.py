"""Copy the contracts' ABIs from forge's output into the package (``protocol/artifacts/abi/``).

``make build`` runs it after ``forge build`` so an installed ``synod`` finds its ABIs without a
checkout or a working directory. Usage: ``python scripts/export_abi.py [ROOT]``. Standard library
only (it runs before the venv exists). A file is rewritten only when its ABI changed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

CONTRACTS = ("DevnetToken", "StakeRegistry", "TaskMarket")
"""Keep in step with ``protocol.chain.deployment.CONTRACT_NAMES`` (a test checks)."""


def export_abis(root: Path) -> list[Path]:
    """Write ``protocol/artifacts/abi/<Name>.json`` (``{"abi": [...]}``) for every contract; returns
    the files written. Raises ``FileNotFoundError`` when forge's artifact is missing."""
    target = root / "protocol" / "artifacts" / "abi"
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name in CONTRACTS:
        artifact = root / "out" / f"{name}.sol" / f"{name}.json"
        abi = json.loads(artifact.read_text(encoding="utf-8"))["abi"]
        text = json.dumps({"abi": abi}, indent=1, sort_keys=True) + "\n"
        path = target / f"{name}.json"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            tmp = path.with_name(f".{name}.{os.getpid()}.tmp")  # parallel builds never share one
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
            written.append(path)
    return written


if __name__ == "__main__":
    ROOT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
    export_abis(ROOT)
