"""Contract ABIs and known deployments shipped inside the ``protocol`` package.

Nothing here reads the working directory. Where things come from, in order:

* ABIs: a configured forge output directory (``artifacts_dir``: ``<dir>/<Name>.sol/<Name>.json``,
  forge's ``out/`` layout), else the package's ``protocol/artifacts/abi/<Name>.json``, which
  ``make build`` refreshes from forge's output (``scripts/export_abi.py``; the files are build
  output and not in git).
* Deployments: a configured file, else ``protocol/artifacts/deployments/<chainId>.json`` for the
  public networks the package knows (the deploy script's JSON, committed by whoever deploys).

Errors are :class:`~protocol.chain.errors.DeploymentError` sentences saying what to run or set.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from protocol.chain.deployment import CONTRACT_NAMES
from protocol.chain.errors import DeploymentError

ABI_PACKAGE_DIR = "abi"
DEPLOYMENTS_PACKAGE_DIR = "deployments"

Abi = list[dict[str, Any]]


def _package_file(*parts: str) -> Path:
    root = resources.files(__name__)
    return Path(str(root.joinpath(*parts)))


def packaged_abi_path(name: str) -> Path:
    """Where the package keeps contract ``name``'s ABI (the file may not exist yet)."""
    return _package_file(ABI_PACKAGE_DIR, f"{name}.json")


def _read_abi(path: Path, name: str, hint: str) -> Abi:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeploymentError(f"no ABI for {name}: {path} does not exist; {hint}") from None
    except (OSError, ValueError) as exc:
        raise DeploymentError(f"cannot read the ABI of {name} from {path}: {exc}; {hint}") from None
    abi = data.get("abi") if isinstance(data, dict) else data
    if not isinstance(abi, list) or not all(isinstance(entry, dict) for entry in abi):
        raise DeploymentError(f"{path} holds no ABI list for {name}; {hint}")
    return abi


def load_abis(artifacts_dir: Path | None = None) -> dict[str, Abi]:
    """The ABIs of :data:`~protocol.chain.deployment.CONTRACT_NAMES`, by contract name.

    ``artifacts_dir`` is a forge output directory (``out/``); ``None`` means the packaged copies.
    Raises :class:`DeploymentError` naming the missing file and the fix.
    """
    abis: dict[str, Abi] = {}
    for name in CONTRACT_NAMES:
        if artifacts_dir is not None:
            path = artifacts_dir / f"{name}.sol" / f"{name}.json"
            hint = "set chain.artifacts_dir to forge's out/ directory after `make build`"
        else:
            path = packaged_abi_path(name)
            hint = "run `make build` (it copies forge's ABIs into the package) or set chain.artifacts_dir"
        abis[name] = _read_abi(path, name, hint)
    return abis


def packaged_deployment(chain_id: int) -> Path | None:
    """The deployment file the package ships for ``chain_id``, if any."""
    path = _package_file(DEPLOYMENTS_PACKAGE_DIR, f"{chain_id}.json")
    return path if path.is_file() else None
