"""Asking a provider which models it offers: OpenAI-compatible ``GET /models``, Ollama's
``/api/tags``, Anthropic's ``/v1/models``. The setup wizard uses it to check a base URL and an
API key before writing them. Failures are :class:`ProviderError`\\ s that never quote the key."""

from __future__ import annotations

from typing import Any, Final, Literal

import httpx

from ._anthropic import API_VERSION
from ._errors import ProviderError
from ._http import error_detail

__all__ = ["DEFAULT_BASE_URLS", "RemoteKind", "list_models"]

RemoteKind = Literal["openai", "anthropic", "ollama"]

#: Where each kind of provider is when ``base_url`` is not given (as the providers assume).
DEFAULT_BASE_URLS: Final[dict[str, str]] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "ollama": "http://127.0.0.1:11434",
}
#: Model lists are small documents; a bigger body is not one.
MAX_BODY: Final = 4 * 1024 * 1024


def _request(kind: RemoteKind, base_url: str, api_key: str | None) -> tuple[str, dict[str, str]]:
    root = base_url.rstrip("/")
    if kind == "openai":
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        return root + "/models", headers
    if kind == "anthropic":
        headers = {"anthropic-version": API_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        return root + "/v1/models", headers
    return root + "/api/tags", {}


def _ids(kind: RemoteKind, doc: Any) -> list[str] | None:
    if not isinstance(doc, dict):
        return None
    items = doc.get("models" if kind == "ollama" else "data")
    if not isinstance(items, list):
        return None
    key = "name" if kind == "ollama" else "id"
    ids = [item[key] for item in items if isinstance(item, dict) and isinstance(item.get(key), str)]
    return sorted(dict.fromkeys(ids))


async def list_models(
    http: httpx.AsyncClient,
    kind: RemoteKind,
    base_url: str | None,
    api_key: str | None,
    *,
    timeout_s: float = 15.0,
) -> list[str]:
    """The model ids the provider lists, sorted. :class:`ProviderError` when it cannot be
    reached (``status`` ``None``), refuses (``status`` 401/403) or answers something else."""
    root = base_url or DEFAULT_BASE_URLS[kind]
    url, headers = _request(kind, root, api_key)
    where = f"the provider at {httpx.URL(url).copy_with(userinfo=b'', query=None)}"
    try:
        response = await http.get(url, headers=headers, timeout=httpx.Timeout(timeout_s))
    except httpx.TimeoutException:
        raise ProviderError(f"{where} did not answer within {timeout_s:g} s") from None
    except httpx.ConnectError:
        raise ProviderError(f"{where} could not be reached (connection failed)") from None
    except httpx.HTTPError as exc:
        raise ProviderError(f"{where} failed: {type(exc).__name__}") from None
    body = response.content[:MAX_BODY]
    if response.status_code in (401, 403):
        raise ProviderError(
            f"{where} refused the API key (HTTP {response.status_code})",
            status=response.status_code,
        )
    if response.status_code >= 400:
        detail = error_detail(body)
        if api_key and detail:
            detail = detail.replace(api_key, "***")
        suffix = f": {detail}" if detail else ""
        raise ProviderError(
            f"{where} answered HTTP {response.status_code}{suffix}", status=response.status_code
        )
    try:
        doc = response.json()
    except ValueError:
        doc = None
    ids = _ids(kind, doc)
    if ids is None:
        raise ProviderError(
            f"{where} did not answer with a model list", status=response.status_code
        )
    return ids
