"""Finding, reading, validating, redacting and comparing configuration (PROTOCOL §9)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import attrs
import msgspec
import platformdirs

from ._clock import now_ts
from ._config import Config, EnvSecret
from ._validation import ValidationFailed, convert

if TYPE_CHECKING:
    from attrs import AttrsInstance

__all__ = [
    "ConfigError",
    "LoadedConfig",
    "changed_keys",
    "config_from_dict",
    "default_config_path",
    "load_config",
    "public_dict",
    "resolve_secret",
    "restart_warnings",
    "secret_env_names",
]

CONFIG_ENV = "ALEPH_TRIO_CONFIG"
REDACTED = "***"
#: Settings read once at start-up; a change is reported and applied at the next start.
RESTART_KEYS = ("server.host", "server.port")


class ConfigError(Exception):
    """A configuration that cannot be used; ``errors`` lists ``{path, message}``."""

    def __init__(self, errors: list[dict[str, str]], *, source: str = "") -> None:
        where = f"{source}: " if source else ""
        first = errors[0] if errors else {"path": "", "message": "invalid configuration"}
        prefix = f"{first['path']}: " if first["path"] else ""
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{where}{prefix}{first['message']}{more}")
        self.errors = errors


@attrs.frozen
class LoadedConfig:
    config: Config
    source: str  #: the file path, or ``"defaults"`` when there was no file
    loaded_at: str
    path: Path | None  #: the file that is watched and reloaded (may not exist yet)


def default_config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--config PATH``, else ``$ALEPH_TRIO_CONFIG``, else ``<user config dir>/config.toml``."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    return Path(platformdirs.user_config_dir("aleph_trio", appauthor=False)) / "config.toml"


def config_from_dict(raw: object) -> Config:
    """Validate a decoded document; every problem is reported with its dotted path."""
    try:
        return convert(raw, Config)
    except ValidationFailed as exc:
        raise ConfigError(exc.errors(root="")) from None


def parse_config_text(text: str, *, source: str = "") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            [{"path": "", "message": f"not valid TOML: {exc}"}], source=source
        ) from None
    try:
        return config_from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(exc.errors, source=source) from None


def load_config(path: Path) -> LoadedConfig:
    """Read ``path``; a missing file means defaults. Blocking: call from a thread when async."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return LoadedConfig(Config(), "defaults", now_ts(), path)
    except OSError as exc:
        raise ConfigError(
            [{"path": "", "message": f"cannot read: {exc.strerror}"}], source=str(path)
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError([{"path": "", "message": "not UTF-8 text"}], source=str(path)) from None
    return LoadedConfig(parse_config_text(text, source=str(path)), str(path), now_ts(), path)


def resolve_secret(value: str | EnvSecret | None) -> str | None:
    """The secret's value now (an unset environment variable gives ``None``)."""
    if isinstance(value, EnvSecret):
        return os.environ.get(value.env) or None
    return value


def _plain(config: object) -> Any:
    return msgspec.to_builtins(config)


def public_dict(config: Config) -> dict[str, Any]:
    """The config as JSON with every secret field replaced by ``"***"``."""
    redacted: dict[str, Any] = _redact(config, _plain(config))
    return redacted


def _redact(obj: object, plain: Any) -> Any:
    if attrs.has(type(obj)):
        out = dict(plain)
        for field in attrs.fields(cast("type[AttrsInstance]", type(obj))):
            value = getattr(obj, field.name)
            if field.metadata.get("secret"):
                if isinstance(value, dict):
                    out[field.name] = {k: REDACTED for k in value}
                elif value is not None:
                    out[field.name] = REDACTED
            else:
                out[field.name] = _redact(value, plain[field.name])
        return out
    if isinstance(obj, dict):
        return {k: _redact(v, plain[k]) for k, v in obj.items()}
    return plain


def _flatten(plain: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(plain, dict):
        for key, value in plain.items():
            _flatten(value, f"{prefix}.{key}" if prefix else key, out)
    else:
        out[prefix] = plain


def changed_keys(old: Config, new: Config) -> list[str]:
    """Dotted paths of every leaf setting that differs."""
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flatten(_plain(old), "", a)
    _flatten(_plain(new), "", b)
    return sorted(k for k in a.keys() | b.keys() if a.get(k, _MISSING) != b.get(k, _MISSING))


_MISSING = object()


def restart_warnings(keys: list[str]) -> list[str]:
    return [
        f"{key} changed: it takes effect at the next start" for key in keys if key in RESTART_KEYS
    ]


def config_warnings(config: Config) -> list[str]:
    """Problems that do not make the file invalid but probably are mistakes."""
    warnings = []
    for path, secret in _secrets(config):
        if isinstance(secret, EnvSecret) and not os.environ.get(secret.env):
            warnings.append(f"{path}: environment variable {secret.env} is not set")
    return warnings


def secret_env_names(config: Config) -> set[str]:
    """Environment variables the config takes secrets from (kept from child processes)."""
    return {s.env for _, s in _secrets(config) if isinstance(s, EnvSecret)}


def _secrets(obj: object, prefix: str = "") -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    if attrs.has(type(obj)):
        for field in attrs.fields(cast("type[AttrsInstance]", type(obj))):
            value = getattr(obj, field.name)
            path = f"{prefix}.{field.name}" if prefix else field.name
            if field.metadata.get("secret"):
                if isinstance(value, dict):
                    found += [(f"{path}.{k}", v) for k, v in value.items()]
                elif value is not None:
                    found.append((path, value))
            else:
                found += _secrets(value, path)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            found += _secrets(value, f"{prefix}.{key}")
    return found
