"""The method registry: each method declares an attrs params class, a description, role rules.

Every method must say whether it is owner-only (``owner_only=`` has no default): the
dispatcher refuses owner-only methods to guests whatever their globs say (PROTOCOL §4), so
a new method cannot be reachable by guests by omission.

The params class is the single declaration behind three things: strict decoding of incoming params,
the JSON Schema listed by ``commands.list``, and the handler's typed argument.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, final

import attrs

from ..kernel import ValidationFailed, convert, json_schema
from ..protocol import InvalidParams

if TYPE_CHECKING:
    from ._context import CallContext

__all__ = ["Method", "Namespace", "NoParams", "Registry"]

P = TypeVar("P")
Handler = Callable[["CallContext", Any], Awaitable[object]]


@attrs.frozen
class NoParams:
    """This method takes no parameters."""


@attrs.frozen(eq=False)
class Method:
    name: str
    description: str
    params: type | None  #: ``None``: any object is accepted and passed through as a dict
    handler: Handler
    owner_only: bool  #: refused to guests whatever their permissions (PROTOCOL §4)
    pre_auth: bool = False  #: callable before the connection has authenticated (``connect``)
    schema: dict[str, Any] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        schema = {"type": "object"} if self.params is None else json_schema(self.params)
        object.__setattr__(self, "schema", schema)

    def decode(self, params: dict[str, Any] | None) -> object:
        """Params as the handler's attrs instance; :class:`InvalidParams` lists every problem."""
        if self.params is None:
            return {} if params is None else params
        try:
            return convert({} if params is None else params, self.params)
        except ValidationFailed as exc:
            errors = exc.errors()
            first = errors[0]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise InvalidParams(
                f"Invalid params: {first['path']}: {first['message']}{more}", errors=errors
            ) from None


@final
class Namespace:
    """Methods of one module, collected with the :meth:`method` decorator."""

    def __init__(self) -> None:
        self.methods: list[Method] = []

    def method(
        self,
        name: str,
        params: type[P] | None,
        *,
        description: str,
        owner_only: bool,
        pre_auth: bool = False,
    ) -> Callable[
        [Callable[[CallContext, P], Awaitable[object]]],
        Callable[[CallContext, P], Awaitable[object]],
    ]:
        def decorate(
            fn: Callable[[CallContext, P], Awaitable[object]],
        ) -> Callable[[CallContext, P], Awaitable[object]]:
            self.methods.append(
                Method(name, description, params, fn, owner_only=owner_only, pre_auth=pre_auth)
            )
            return fn

        return decorate


@final
class Registry:
    """All methods the gateway answers, by name."""

    def __init__(self, *namespaces: Namespace) -> None:
        self._methods: dict[str, Method] = {}
        for ns in namespaces:
            for method in ns.methods:
                self.add(method)

    def add(self, method: Method) -> None:
        if method.name in self._methods:
            raise ValueError(f"method {method.name!r} is already registered")
        self._methods[method.name] = method

    def remove(self, name: str) -> None:
        self._methods.pop(name, None)

    def get(self, name: str) -> Method | None:
        return self._methods.get(name)

    def __iter__(self) -> Iterator[Method]:
        return iter(sorted(self._methods.values(), key=lambda m: m.name))

    def __len__(self) -> int:
        return len(self._methods)

    def __contains__(self, name: object) -> bool:
        return name in self._methods
