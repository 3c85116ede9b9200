"""LLM providers behind one interface (:class:`workflow.providers.base.LLMProvider`)."""
