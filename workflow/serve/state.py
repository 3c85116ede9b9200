"""What ``synod model serve`` is configured with and serves: settings, the model's identity, the pool."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from workflow.serve.pool import ModelPool

DEFAULT_PORT = 11434
"""Ollama's port: a node's Ollama provider finds the server without configuration."""


class ServeSettings(BaseModel):
    """``synod model serve`` options (built once from the command line)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="gemma3-270m", min_length=1)
    """The served model name; ``:latest`` is added when it has no tag."""
    gguf: Path | None = None
    """The GGUF file; None: the packaged Gemma 3 270M."""
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    parallel: int = Field(default=1, ge=1, le=64)
    """Slots generating at once (one llama.cpp instance each)."""
    threads: int = Field(default=2, ge=1, le=256)
    """llama.cpp threads in total, split among the slots."""
    ctx: int = Field(default=4096, ge=256, le=131072)
    """Context size of each slot, in tokens."""
    max_queue: int = Field(default=64, ge=0, le=100_000)
    """Requests allowed to wait for a slot; more are answered 503."""
    request_timeout_s: float = Field(default=300.0, gt=0)
    """Deadline of one request, queue wait included."""

    @property
    def tag(self) -> str:
        return self.name if ":" in self.name else f"{self.name}:latest"


def file_digest(path: Path) -> str:
    """sha256 of the file, hex (Ollama lists a model's digest)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ServedModel:
    """The model's identity as the APIs list it."""

    tag: str
    path: Path
    size: int
    digest: str
    modified_at: str
    metadata: dict[str, str]

    @classmethod
    def describe(cls, tag: str, path: Path, metadata: dict[str, str], digest: str) -> ServedModel:
        stat = path.stat()
        modified = datetime.fromtimestamp(stat.st_mtime, UTC).isoformat().replace("+00:00", "Z")
        return cls(
            tag=tag, path=path, size=stat.st_size, digest=digest, modified_at=modified, metadata=metadata
        )

    def matches(self, name: str) -> bool:
        """``gemma3-270m`` matches ``gemma3-270m:latest``, as in Ollama."""
        return name == self.tag or (":" not in name and f"{name}:latest" == self.tag)

    @property
    def family(self) -> str:
        return self.metadata.get("general.architecture", "unknown")

    @property
    def parameter_size(self) -> str:
        raw = self.metadata.get("general.size_label") or ""
        return raw or "unknown"

    @property
    def quantization(self) -> str:
        name = self.metadata.get("general.name", "")
        file_type = self.metadata.get("general.file_type", "")
        upper = self.path.name.upper()
        for label in ("Q4_K_M", "Q4_K_S", "Q5_K_M", "Q8_0", "Q4_0", "F16", "BF16", "F32"):
            if label in upper or label in name.upper():
                return label
        return f"file_type {file_type}" if file_type else "unknown"

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization,
        }

    def tag_entry(self) -> dict[str, Any]:
        """One ``/api/tags`` entry."""
        return {
            "name": self.tag,
            "model": self.tag,
            "modified_at": self.modified_at,
            "size": self.size,
            "digest": self.digest,
            "details": self.details(),
        }

    def show_entry(self) -> dict[str, Any]:
        """The ``/api/show`` answer."""
        info: dict[str, Any] = {}
        for key, value in self.metadata.items():
            if key.startswith("tokenizer.ggml.") and key not in ("tokenizer.ggml.model",):
                continue  # token tables are large; Ollama omits them unless verbose
            info[key] = int(value) if value.isdigit() else value
        return {
            "modelfile": f"FROM {self.path}\n",
            "parameters": "",
            "template": "{{ .Prompt }}",
            "details": self.details(),
            "model_info": info,
            "capabilities": ["completion", "tools"],
            "modified_at": self.modified_at,
        }


@dataclass(frozen=True)
class ServeState:
    """Everything an endpoint needs."""

    settings: ServeSettings
    model: ServedModel
    pool: ModelPool
    version: str
