"""The ``setup`` wizard: provider kind → base URL → API key → default model → confirm.

The base URL and the key are checked against the provider's model list as they are answered
(a URL nobody answers at, or a key the provider refuses, is refused and the step stays), the
default model is chosen from that list, and on confirmation the provider and
``agents.main.model`` are written to the config file, which is then reloaded. The key is only
ever in the file: no step, event, log line or message repeats it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final, Literal, final

import attrs
import httpx
import trio
from msgspec import Meta

from ..kernel import ConfigError, ConfigService, InvalidArgument, OperationFailed
from ..providers import DEFAULT_BASE_URLS, ProviderError, RemoteKind, list_models
from ._config_write import update_config_file
from ._service import Flow
from ._session import WizardUI
from ._steps import Option, Step, confirm, note, password, select, text

__all__ = ["SetupFlow", "SetupInitial"]

KINDS: Final = (
    Option("openai", "OpenAI-compatible", "OpenAI, vLLM, llama.cpp, LM Studio, any /v1 server"),
    Option("anthropic", "Anthropic", "Claude models; needs an API key"),
    Option("ollama", "Ollama", "local models, no API key"),
)
#: At most this many models are offered to choose from (a provider may list hundreds).
MAX_MODEL_OPTIONS: Final = 200

ProviderName = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+(?!\n)$")]


@attrs.frozen
class SetupInitial:
    """Defaults the client may pass as ``initial_data``."""

    provider: ProviderName | None = None  #: the ``[providers.<name>]`` table to write
    kind: Literal["openai", "anthropic", "ollama"] | None = None
    base_url: Annotated[str, Meta(max_length=2000)] | None = None


def _refused(exc: ProviderError) -> InvalidArgument:
    return InvalidArgument.field("$.value", exc.message)


@attrs.define
class _Answers:
    kind: RemoteKind = "openai"
    base_url: str = ""
    #: The model list as the last check received it; ``None``: the provider wants a key first.
    models: list[str] | None = None


@final
class SetupFlow:
    def __init__(self, settings: ConfigService, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._http = http
        self._writing = trio.Lock()

    def flow(self) -> Flow:
        return Flow(
            "setup",
            "Choose a model provider and the default model, and write them to the config file.",
            self.run,
            SetupInitial,
            owner_only=True,
            unavailable=self.unavailable,
        )

    def unavailable(self) -> str | None:
        if self._settings.loaded.path is None:
            return "this gateway was given its configuration directly; there is no config file"
        return None

    async def run(self, ui: WizardUI, initial: SetupInitial) -> Step:
        answers = _Answers()
        answers.kind = await ui.ask(
            select(
                "Provider",
                KINDS,
                "Which kind of model provider should the gateway use?",
                default=initial.kind or "openai",
            )
        )
        kind = answers.kind
        name = initial.provider or kind
        existing = self._settings.config.providers.get(name)
        same = existing is not None and existing.kind == kind
        default_url = initial.base_url or (existing.base_url if same and existing else None)
        answers.base_url = await ui.ask(
            text(
                "Base URL",
                f"Where is the {_label(kind)} server? It is asked for its model list now.",
                default=default_url or DEFAULT_BASE_URLS[kind],
                check=lambda url: self._check_url(answers, url),
            )
        )
        key: str | None = None
        if kind != "ollama":
            keyless = answers.models is not None
            message = (
                "The server listed its models without a key: leave this empty if it needs none."
                if keyless
                else "The key is checked against the provider's model list and written only to "
                "the config file (mode 0600)."
            )
            key = await ui.ask(
                password(
                    "API key",
                    message,
                    required=not keyless,
                    check=lambda value: self._check_key(answers, value),
                )
            )
            key = key or None
        model = await self._ask_model(ui, name, answers.models or [])
        path = self._settings.loaded.path
        assert path is not None
        summary = (
            f"Provider {name!r} ({_label(kind)}) at {answers.base_url}, "
            f"{'with an API key' if key else 'without an API key'}; "
            f"agents.main uses {name}/{model}. This is written to {path}."
        )
        if not await ui.ask(confirm("Save this configuration?", summary)):
            return note("Nothing was changed", "The configuration file was not touched.")
        keys = await self._write(path, name, kind, answers.base_url, key, model)
        changed = ", ".join(keys) if keys else "nothing (it was already so)"
        return note(
            "Configuration saved",
            f"Wrote {path} and reloaded it. Changed: {changed}. "
            f"Runs of agent main now use {name}/{model}.",
        )

    async def _check_url(self, answers: _Answers, url: str) -> str:
        url = url.strip().rstrip("/")
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            parsed = None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            raise InvalidArgument.field("$.value", "expected an http:// or https:// URL")
        try:
            answers.models = await list_models(self._http, answers.kind, url, None)
        except ProviderError as exc:
            if exc.status not in (401, 403) or answers.kind == "ollama":
                raise _refused(exc) from None
            answers.models = None  # it is there, and wants a key
        return url

    async def _check_key(self, answers: _Answers, key: str) -> str:
        if not key and answers.models is not None:
            return key  # the server needs none
        try:
            answers.models = await list_models(self._http, answers.kind, answers.base_url, key)
        except ProviderError as exc:
            raise _refused(exc) from None
        return key

    async def _ask_model(self, ui: WizardUI, name: str, models: list[str]) -> str:
        current = self._settings.config.agents.get("main")
        current_model = current.model if current is not None else None
        prefix = f"{name}/"
        default = None
        if current_model and current_model.startswith(prefix):
            default = current_model.removeprefix(prefix)
        if not models:
            answer: str = await ui.ask(
                text(
                    "Default model",
                    "The provider listed no models; type the name of the one to use.",
                    default=default,
                )
            )
            return answer
        shown = models[:MAX_MODEL_OPTIONS]
        if default not in shown:
            default = shown[0]
        more = f" (the first {len(shown)} of {len(models)})" if len(models) > len(shown) else ""
        answer = await ui.ask(
            select(
                "Default model",
                [Option(model, model) for model in shown],
                f"The provider offers {len(models)} model(s){more}. Which should agent main use?",
                default=default,
            )
        )
        return answer

    async def _write(
        self, path: Path, name: str, kind: str, base_url: str, key: str | None, model: str
    ) -> list[str]:
        def change(doc: dict[str, Any]) -> None:
            providers = doc.setdefault("providers", {})
            old = providers.get(name)
            old_models = old.get("models", []) if isinstance(old, dict) else []
            if not isinstance(old, dict) or old.get("kind") != kind:
                old_models = []
            entry: dict[str, Any] = {
                "kind": kind,
                "base_url": base_url,
                "models": [model, *(m for m in old_models if m != model)],
            }
            if key:
                entry["api_key"] = key
            providers[name] = entry
            agents = doc.setdefault("agents", {})
            agents.setdefault("main", {})["model"] = f"{name}/{model}"

        async with self._writing:
            await trio.to_thread.run_sync(update_config_file, path, change)
            try:
                outcome = await self._settings.reload(source="rpc")
            except ConfigError as exc:  # changed by someone else meanwhile
                raise OperationFailed(
                    f"the config file was written but not loaded: {exc}"
                ) from None
        return outcome.changed_keys


def _label(kind: str) -> str:
    return next(option.label for option in KINDS if option.value == kind)
