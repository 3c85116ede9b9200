"""``synod model serve``: the local model over Ollama's and OpenAI's HTTP APIs (docs/model-serve.md)."""
