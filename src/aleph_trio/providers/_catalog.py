"""Which models exist: every ``[providers.<name>]`` model, plus the built-in offline model.

Model ids are ``<provider>/<model>``; a bare model name is accepted where it is unique.
"""

from __future__ import annotations

from typing import final

import httpx

from ..kernel import Config, Conflict, NotFound, ProviderConfig, resolve_secret
from ._anthropic import AnthropicProvider
from ._builtin import BUILTIN_MODEL, BuiltinProvider
from ._ollama import OllamaProvider
from ._openai import OpenAIProvider
from ._types import ModelInfo, Provider

__all__ = ["ModelCatalog", "agent_model_warnings"]

#: What we assume of a configured model until its provider tells us more.
_DEFAULT_CONTEXT = {"openai": 128_000, "anthropic": 200_000, "ollama": 8_192, "builtin": 32_768}
_DEFAULT_OUTPUT = {"openai": 16_384, "anthropic": 8_192, "ollama": 4_096, "builtin": 4_096}


def _configured(name: str, provider: ProviderConfig) -> list[ModelInfo]:
    if provider.kind == "builtin":
        return BuiltinProvider(name, provider.models).models()
    return [
        ModelInfo(
            id=f"{name}/{model}",
            provider=name,
            name=model,
            context_window=_DEFAULT_CONTEXT[provider.kind],
            max_output_tokens=_DEFAULT_OUTPUT[provider.kind],
            thinking=provider.kind == "anthropic",
        )
        for model in provider.models
    ]


def _provider(name: str, config: ProviderConfig, http: httpx.AsyncClient) -> Provider:
    models = _configured(name, config)
    key = resolve_secret(config.api_key)
    if config.kind == "openai":
        base_url = config.base_url or "https://api.openai.com/v1"
        return OpenAIProvider(name, base_url=base_url, api_key=key, models=models, http=http)
    if config.kind == "anthropic":
        return AnthropicProvider(
            name, base_url=config.base_url, api_key=key, models=models, http=http
        )
    if config.kind == "ollama":
        return OllamaProvider(name, base_url=config.base_url, models=models, http=http)
    return BuiltinProvider(name, config.models)


@final
class ModelCatalog:
    """The providers built from the config, and their models by id.

    One catalogue lives as long as the gateway; :meth:`configure` rebuilds its providers when
    the config changes, so every service holding it sees the new ones.
    """

    def __init__(self, config: Config, http: httpx.AsyncClient) -> None:
        self._http = http
        self.providers: dict[str, Provider] = {}
        self._models: dict[str, ModelInfo] = {}
        self.configure(config)

    def configure(self, config: Config) -> None:
        providers = {
            name: _provider(name, provider, self._http)
            for name, provider in sorted(config.providers.items())
        }
        if "builtin" not in providers:
            providers["builtin"] = BuiltinProvider()
        self.providers = providers
        self._models = {m.id: m for p in providers.values() for m in p.models()}

    @property
    def default_model(self) -> str:
        """The first configured model, else the built-in one."""
        for model_id in self._models:
            return model_id
        return f"builtin/{BUILTIN_MODEL}"

    def provider_for(self, model: ModelInfo) -> Provider:
        return self.providers[model.provider]

    def list(self) -> list[ModelInfo]:
        return list(self._models.values())

    def resolve(self, model_id: str) -> ModelInfo:
        """The model named by a full id, or by a bare name that only one provider offers."""
        return _resolve(self._models, model_id)


def _resolve(models: dict[str, ModelInfo], model_id: str) -> ModelInfo:
    found = models.get(model_id)
    if found is not None:
        return found
    if "/" not in model_id:
        matches = [m for m in models.values() if m.name == model_id]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            ids = ", ".join(m.id for m in matches)
            raise Conflict(
                f"model {model_id!r} is offered by several providers ({ids}); "
                "use <provider>/<model>"
            )
    raise NotFound("model", model_id)


def agent_model_warnings(config: Config) -> list[str]:
    """Agents whose configured model no provider of ``config`` offers (or offers ambiguously),
    each naming the config key, as ``config.validate`` and ``config.reload`` report them."""
    offered = [m for name, p in sorted(config.providers.items()) for m in _configured(name, p)]
    if "builtin" not in config.providers:
        offered += BuiltinProvider().models()
    models = {m.id: m for m in offered}
    warnings = []
    for agent_id, agent in sorted(config.agents.items()):
        if agent.model is None:
            continue
        try:
            _resolve(models, agent.model)
        except NotFound:
            warnings.append(
                f"agents.{agent_id}.model: unknown model {agent.model!r}: no configured "
                "provider offers it (models.list shows those that do); runs of this agent fail"
            )
        except Conflict as exc:
            warnings.append(f"agents.{agent_id}.model: {exc.message}")
    return warnings
