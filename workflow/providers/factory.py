"""Build the provider a :class:`ProviderSettings` describes (imports the backend lazily)."""

from __future__ import annotations

from workflow.errors import ProviderError
from workflow.providers.base import LLMProvider, ProviderSettings


def build_provider(settings: ProviderSettings) -> LLMProvider:
    """Return an unopened provider for ``settings.kind``; call ``aclose()`` when done with it."""
    if settings.kind == "local":
        from workflow.providers.local import LocalProvider

        return LocalProvider(settings)
    if settings.kind == "ollama":
        from workflow.providers.ollama import OllamaProvider

        return OllamaProvider(settings)
    if settings.kind == "openai":
        from workflow.providers.openai import OpenAIProvider

        return OpenAIProvider(settings)
    raise ProviderError(f"unknown provider kind {settings.kind!r}", endpoint="<none>", model=settings.model)
