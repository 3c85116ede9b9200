"""``[run.provider]`` of a node's config: :class:`NodeProviderSettings`.

Its own module (re-exported by :mod:`node.config`) so that the workflow worker process
(:mod:`node.worker`), which needs only this table, does not import the rest of the node's config
and, through it, the p2p and chain stacks (libp2p, web3, eth-account: ~3 CPU-s of imports per
worker start, which ran while the devnet's first batches were already computing).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ProviderKindName = Literal["local", "ollama", "openai"]


class NodeProviderSettings(BaseModel):
    """``[run.provider]``: the model server the workflows run on.

    ``models`` maps each on-chain model name the node registered (the config's ``models``) to the
    provider's own name for it: the Ollama tag, the OpenAI-compatible model id, or for ``local`` a
    GGUF file path ("" = the packaged Gemma 3 270M). A registered model missing from the map is
    served under its on-chain name.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ProviderKindName = "local"
    url: str = ""
    """Server base URL (ollama: "" means ``$OLLAMA_HOST`` or http://127.0.0.1:11434; openai: required)."""
    api_key_env: str = ""
    """openai: the environment variable holding the API key ("" = none). Never the key itself."""
    models: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=120.0, gt=0, le=3600)
    """Deadline of one model call, seconds (the task's own deadline may be shorter)."""
    stall_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    """ollama: a stream silent this long is abandoned."""
    max_retries: int = Field(default=2, ge=0, le=10)
    n_threads: int = Field(default=2, ge=1, le=256)
    """local: llama.cpp threads."""
    n_ctx: int = Field(default=4096, ge=256, le=1_048_576)
    """Context window in tokens (local ``n_ctx``, ollama ``num_ctx``)."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _openai_needs_url(self) -> NodeProviderSettings:
        if self.kind == "openai" and not self.url:
            raise ValueError("url: an openai provider needs the server's base URL")
        return self

    def provider_model(self, chain_model: str) -> str:
        """The provider's name for ``chain_model`` (the map's value, else the name itself)."""
        return self.models.get(chain_model) or chain_model
