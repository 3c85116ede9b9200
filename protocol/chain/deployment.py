"""The deployment file that ``scripts/Deploy.s.sol`` writes, and the forge artifacts it points to.

``deployments/<chainId>.json`` (or ``$SYNOD_DEPLOYMENTS_FILE``)::

    {"chainId": 31337, "deployBlock": N, "deployer": "0x..",
     "contracts": {"DevnetToken": {"address": "0x..", "artifact": "out/DevnetToken.sol/DevnetToken.json"},
                   "StakeRegistry": {...}, "TaskMarket": {...}},
     "params": {...}}

ABIs come only from forge's build output (the artifact's ``"abi"`` key).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from protocol.chain.errors import DeploymentError
from protocol.types import Address, TypeValidationError, address_of


def _checksummed(value: object) -> Address:
    try:
        return address_of(value)
    except TypeValidationError as exc:
        raise ValueError(str(exc)) from None


ChecksumAddress = Annotated[Address, BeforeValidator(_checksummed)]
"""An address field: any 0x-hex spelling in, the checksummed form out."""

CONTRACT_NAMES = ("DevnetToken", "StakeRegistry", "TaskMarket")
"""The contracts every deployment holds."""


class DeployedContract(BaseModel):
    """One deployed contract: its address and the forge artifact holding its ABI."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: ChecksumAddress
    artifact: str


class Deployment(BaseModel):
    """The deployment JSON, validated."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    chain_id: int = Field(alias="chainId", gt=0)
    deploy_block: int = Field(alias="deployBlock", ge=0)
    deployer: ChecksumAddress
    contracts: dict[str, DeployedContract]
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("contracts")
    @classmethod
    def _complete(cls, value: dict[str, DeployedContract]) -> dict[str, DeployedContract]:
        missing = [name for name in CONTRACT_NAMES if name not in value]
        if missing:
            raise ValueError(f"missing contracts {missing}")
        return value

    def address(self, name: str) -> Address:
        """The address of contract ``name``."""
        return self.contracts[name].address


def load_deployment(path: Path) -> Deployment:
    """Read and validate a deployment file."""
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DeploymentError(f"cannot read deployment file {path}: {exc}") from None
    try:
        return Deployment.model_validate_json(raw)
    except ValidationError as exc:
        raise DeploymentError(f"invalid deployment file {path}: {exc}") from None


def load_abi(artifact: Path) -> list[dict[str, Any]]:
    """The ABI from a forge artifact (``out/<Name>.sol/<Name>.json``, key ``"abi"``)."""
    try:
        data = json.loads(artifact.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DeploymentError(f"cannot read forge artifact {artifact} (run `make build`): {exc}") from None
    abi = data.get("abi") if isinstance(data, dict) else None
    if not isinstance(abi, list):
        raise DeploymentError(f"forge artifact {artifact} has no 'abi' list")
    return abi


def artifact_path(root: Path, name: str) -> Path:
    """Where forge writes contract ``name``'s artifact under project ``root``."""
    return root / "out" / f"{name}.sol" / f"{name}.json"
