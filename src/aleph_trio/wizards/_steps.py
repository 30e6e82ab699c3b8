"""What a flow asks (PROTOCOL §11): steps, built with :func:`note`, :func:`text`,
:func:`password`, :func:`select`, :func:`multiselect` and :func:`confirm`, and the typed check
of an answer against its step.

A step may carry a ``check``: an async function the flow's engine runs on a well-typed answer
inside the flow's own cancel scope (a provider call, a schedule parse). It returns the value
the flow gets (possibly normalised) or raises :class:`~aleph_trio.kernel.InvalidArgument`,
which the client is answered with while the step stays current.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Literal

import attrs

from ..kernel import InvalidArgument

__all__ = [
    "INTERACTIVE",
    "Check",
    "Option",
    "Step",
    "StepType",
    "check_answer",
    "confirm",
    "multiselect",
    "note",
    "password",
    "select",
    "text",
]

StepType = Literal["note", "text", "password", "select", "multiselect", "confirm"]
#: Steps that wait for ``wizard.answer``; a ``note`` waits for ``wizard.next``.
INTERACTIVE: Final = frozenset({"text", "password", "select", "multiselect", "confirm"})
#: The longest text answer taken (a prompt or a persona is long; a config value is not).
MAX_TEXT: Final = 20_000

Check = Callable[[Any], Awaitable[Any]]


@attrs.frozen
class Option:
    value: str
    label: str
    hint: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"value": self.value, "label": self.label}
        if self.hint is not None:
            out["hint"] = self.hint
        return out


@attrs.frozen
class Step:
    """One question. ``id`` is given by the session when the step is posted."""

    type: StepType
    title: str
    message: str = ""
    options: tuple[Option, ...] = ()
    default: Any = None
    required: bool = True
    check: Check | None = attrs.field(default=None, eq=False, repr=False)
    id: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "title": self.title,
            "message": self.message,
        }
        if self.options:
            out["options"] = [option.to_json() for option in self.options]
        if self.default is not None and self.type != "password":
            out["default"] = list(self.default) if isinstance(self.default, tuple) else self.default
        if self.type in INTERACTIVE:
            out["required"] = self.required
        return out


def note(title: str, message: str = "") -> Step:
    return Step("note", title, message)


def text(
    title: str,
    message: str = "",
    *,
    default: str | None = None,
    required: bool = True,
    check: Check | None = None,
) -> Step:
    return Step("text", title, message, default=default, required=required, check=check)


def password(
    title: str, message: str = "", *, required: bool = True, check: Check | None = None
) -> Step:
    """A secret: its answer is never shown back, logged or published, and it has no default."""
    return Step("password", title, message, required=required, check=check)


def select(
    title: str,
    options: Sequence[Option],
    message: str = "",
    *,
    default: str | None = None,
    check: Check | None = None,
) -> Step:
    return Step("select", title, message, tuple(options), default=default, check=check)


def multiselect(
    title: str,
    options: Sequence[Option],
    message: str = "",
    *,
    default: Sequence[str] = (),
    required: bool = False,
    check: Check | None = None,
) -> Step:
    return Step(
        "multiselect",
        title,
        message,
        tuple(options),
        default=tuple(default) or None,
        required=required,
        check=check,
    )


def confirm(title: str, message: str = "", *, default: bool = True) -> Step:
    return Step("confirm", title, message, default=default)


def _wrong(message: str) -> InvalidArgument:
    return InvalidArgument.field("$.value", message)


def check_answer(step: Step, value: Any) -> Any:
    """``value`` as the flow gets it, if it is the right type for ``step``; else
    :class:`InvalidArgument` naming ``$.value`` (a secret's value is never quoted)."""
    kind = step.type
    if kind == "note":
        if value is not None:
            raise _wrong("a note takes no answer (null); call wizard.next to go on")
        return None
    if kind == "confirm":
        if not isinstance(value, bool):
            raise _wrong("expected true or false")
        return value
    allowed = [option.value for option in step.options]
    if kind == "select":
        if not isinstance(value, str) or value not in allowed:
            raise _wrong("expected one of: " + ", ".join(allowed))
        return value
    if kind == "multiselect":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _wrong("expected a list of option values")
        unknown = [v for v in value if v not in allowed]
        if unknown:
            raise _wrong(f"not an option: {unknown[0]} (options: {', '.join(allowed)})")
        if len(set(value)) != len(value):
            raise _wrong("an option is chosen more than once")
        if step.required and not value:
            raise _wrong("choose at least one option")
        return list(value)
    if not isinstance(value, str):
        raise _wrong("expected a string")
    if len(value) > MAX_TEXT:
        raise _wrong(f"at most {MAX_TEXT} characters")
    if step.required and not value.strip():
        raise _wrong("must not be blank")
    return value if kind == "password" else value.strip()
