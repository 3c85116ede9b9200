"""Custom tools declared in a workflow's ``config.custom_tools``, in the Ollama Workflows format.

The original (``CustomToolTemplate`` in andthattoo/ollama-workflows ``src/program/atomics.rs``) is
``{name, description}`` plus a ``mode`` tag flattened into the same object:

- ``"mode": "http_request"`` with ``url``, ``method`` (GET, POST, PUT, DELETE) and optional
  ``headers`` and ``body`` (string maps). The tool's parameters are the ``body`` keys, all strings,
  all required. Older workflows omit ``mode``: that means ``http_request``.
- ``"mode": "custom"`` with ``parameters`` (a JSON schema): a function the model may call whose
  call is returned to the program rather than executed (``function_calling_raw``).

Executing an ``http_request`` tool: the headers are sent as declared (plus ``Authorization: Bearer
<key>`` when :class:`workflow.tools.registry.ToolSettings` has ``custom_tool_api_key``, as the
original does with ``$API_KEY``); for methods other than GET the model's arguments become the JSON
body (values as strings; a declared ``body`` value fills an argument the model left out); for GET
the original sends no body, and Synod sends the arguments as query parameters instead. The answer
text is the result, the response its source.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from workflow.errors import ToolError
from workflow.providers.base import ToolSpec
from workflow.tools.base import ToolResult
from workflow.tools.http import Fetcher

HttpMethod = Literal["GET", "POST", "PUT", "DELETE"]


class CustomToolTemplate(BaseModel):
    """One entry of ``config.custom_tools`` (field names exactly as the original's serde names)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str
    mode: Literal["custom", "http_request"] = "http_request"
    parameters: dict[str, Any] | None = None
    """``custom`` mode: the JSON schema of the arguments."""
    url: str | None = None
    method: HttpMethod | None = None
    headers: dict[str, str] | None = None
    body: dict[str, str] | None = None

    @model_validator(mode="after")
    def _fields_match_mode(self) -> CustomToolTemplate:
        # An empty name or a non-http(s) url loads (the original's serde takes any string); the
        # validator warns, the workflow ignores a nameless tool, and a call to such a url fails.
        if self.mode == "http_request":
            if self.url is None or self.method is None:
                raise ValueError(f"custom tool {self.name!r}: mode 'http_request' needs 'url' and 'method'")
            if self.parameters is not None:
                raise ValueError(f"custom tool {self.name!r}: 'parameters' belongs to mode 'custom'")
        else:
            if self.parameters is None:
                raise ValueError(f"custom tool {self.name!r}: mode 'custom' needs 'parameters'")
            extra = [f for f in ("url", "method", "headers", "body") if getattr(self, f) is not None]
            if extra:
                raise ValueError(f"custom tool {self.name!r}: {extra} belong to mode 'http_request'")
        return self

    def tool_spec(self) -> ToolSpec:
        """What the model sees when function calling."""
        if self.mode == "custom":
            return ToolSpec(
                name=self.name, description=self.description, parameters=dict(self.parameters or {})
            )
        keys = list(self.body or {})
        properties = {k: {"type": "string", "description": f"The value for {k}"} for k in keys}
        return ToolSpec(
            name=self.name,
            description=self.description,
            parameters={"type": "object", "properties": properties, "required": keys},
        )


class CustomHttpTool:
    """Executes an ``http_request`` custom tool (see the module docstring)."""

    def __init__(
        self, template: CustomToolTemplate, fetcher: Fetcher, *, api_key: SecretStr | None = None
    ) -> None:
        if template.mode != "http_request":
            raise ToolError(f"custom tool {template.name!r} has mode {template.mode!r}, not 'http_request'")
        self.template = template
        self._fetcher = fetcher
        self._api_key = api_key
        self._spec = template.tool_spec()

    @property
    def spec(self) -> ToolSpec:
        return self._spec

    def _values(self, arguments: Mapping[str, Any]) -> dict[str, str]:
        values = dict(self.template.body or {})
        for key, value in arguments.items():
            values[str(key)] = value if isinstance(value, str) else _json(value)
        return values

    async def call(self, arguments: Mapping[str, Any]) -> ToolResult:
        template = self.template
        assert template.url is not None and template.method is not None
        headers = dict(template.headers or {})
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        values = self._values(arguments)
        missing = [k for k in (template.body or {}) if k not in values]
        if missing:
            raise ToolError(f"custom tool {template.name!r}: missing arguments {missing}")
        if template.method == "GET":
            fetched = await self._fetcher.fetch(
                template.url, accept=(), headers=headers, params=values or None, robots=False
            )
        else:
            fetched = await self._fetcher.fetch(
                template.url,
                accept=(),
                method=template.method,
                headers=headers,
                json_body=values,
                robots=False,
            )
        return ToolResult(content=fetched.text, sources=(fetched.source,))


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)
