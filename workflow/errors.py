"""Errors of the workflow engine, its model providers and its tools::

SynodError (protocol.errors)
└── WorkflowError
    ├── WorkflowValidationError   the program is invalid (carries the JSON path and reason)
    ├── WorkflowRuntimeError      the program failed while running
    │   ├── MissingInputError     a referenced input / memory key is absent
    │   ├── StepLimitError        more than config.max_steps steps
    │   └── TimeLimitError        past config.max_time seconds
    ├── ProviderError             a model provider failed (carries endpoint and model)
    │   ├── ProviderUnavailableError   cannot connect, or the server errors after retries
    │   ├── ModelNotFoundError         the server does not have the model
    │   ├── ProviderTimeoutError       no answer within the timeout, or a stream that stalled
    │   ├── ContextWindowError         the server evaluated fewer prompt tokens than were sent
    │   └── ProviderResponseError      an answer that does not follow the API
    └── ToolError                 a tool (search, scrape, custom HTTP) failed
        ├── ToolNotFoundError
        ├── FetchError            HTTP failure, bad content type, over the size cap
        └── RobotsDisallowedError robots.txt forbids the URL
"""

from __future__ import annotations

from protocol.errors import SynodError


class WorkflowError(SynodError):
    """Root of the workflow engine's errors."""


class WorkflowValidationError(WorkflowError):
    """An invalid workflow, rejected before any model call."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class WorkflowRuntimeError(WorkflowError):
    """A workflow that failed while running."""


class MissingInputError(WorkflowRuntimeError):
    """A prompt variable or input that has no value."""


class StepLimitError(WorkflowRuntimeError):
    """The program took more than ``config.max_steps`` steps."""


class TimeLimitError(WorkflowRuntimeError):
    """The program ran past ``config.max_time`` seconds."""


class ProviderError(WorkflowError):
    """A model provider failed; ``endpoint`` and ``model`` say which."""

    def __init__(self, message: str, *, endpoint: str, model: str) -> None:
        super().__init__(f"{message} (endpoint {endpoint}, model {model})")
        self.endpoint = endpoint
        self.model = model


class ProviderUnavailableError(ProviderError):
    """The server cannot be reached, or kept failing after the retries."""


class ModelNotFoundError(ProviderError):
    """The server does not serve the model."""


class ProviderTimeoutError(ProviderError):
    """No answer within the provider's timeout."""


class ProviderResponseError(ProviderError):
    """An answer that does not follow the provider's API."""


class ContextWindowError(ProviderError):
    """The prompt did not fit the context window: the server cut it (it evaluated fewer prompt
    tokens than were sent)."""


class ToolError(WorkflowError):
    """A tool failed."""


class ToolNotFoundError(ToolError):
    """The workflow names a tool that is not configured."""


class FetchError(ToolError):
    """An HTTP fetch failed: status, content type, size or time cap."""


class RobotsDisallowedError(FetchError):
    """robots.txt disallows the URL for our user agent."""
