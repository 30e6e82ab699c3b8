"""``SKILL.md``: front matter (``name``, ``description``) between ``---`` lines, then Markdown.

The front matter is read by a small parser of the YAML subset skills use: ``key: value`` lines
at the top level, values plain or quoted (``"..."`` with backslash escapes, ``'...'`` with
``''``), and block scalars (``|`` keeps line breaks, ``>`` folds them). Keys other than
``name`` and ``description`` (``license``, ``metadata`` with indented children, ...) are
skipped. Nothing else of YAML is needed, so PyYAML is not a dependency.
"""

from __future__ import annotations

import json
import re

import attrs

__all__ = [
    "MAX_DESCRIPTION",
    "NAME_PATTERN",
    "SkillDoc",
    "SkillFormatError",
    "parse_skill_md",
    "valid_name",
]

#: A skill's name: also its folder's name, so it may never be ``.``, ``..`` or hold a slash.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}(?!\n)$"
_NAME = re.compile(NAME_PATTERN)
MAX_DESCRIPTION = 1024
_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_\-]*)\s*:(?:\s+(.*)|\s*)$")


class SkillFormatError(ValueError):
    """The text is not a valid skill; the message says what is wrong, for a person."""


@attrs.frozen
class SkillDoc:
    name: str
    description: str
    body: str


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name))


def parse_skill_md(text: str) -> SkillDoc:
    """The skill ``text`` describes; :class:`SkillFormatError` when it is not one."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        raise SkillFormatError("it does not start with front matter (a line '---')")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise SkillFormatError("its front matter has no closing '---' line") from None
    fields = _front_matter(lines[1:end])
    name = fields.get("name", "").strip()
    description = " ".join(fields.get("description", "").split())
    if not name:
        raise SkillFormatError("its front matter has no 'name'")
    if not valid_name(name):
        raise SkillFormatError(
            f"its name {name!r} is not 1-64 letters, digits and _ . - (starting with a letter "
            "or digit)"
        )
    if not description:
        raise SkillFormatError("its front matter has no 'description'")
    if len(description) > MAX_DESCRIPTION:
        raise SkillFormatError(f"its description is longer than {MAX_DESCRIPTION} characters")
    body = "\n".join(lines[end + 1 :]).strip("\n")
    return SkillDoc(name, description, body)


def _front_matter(lines: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#") or line[:1].isspace():
            continue  # blank, a comment, or a child of a key we skip
        match = _KEY.match(line.rstrip())
        if match is None:
            raise SkillFormatError(f"its front matter line {line.strip()!r} is not 'key: value'")
        key, raw = match.group(1), (match.group(2) or "").strip()
        block: list[str] = []
        while i < len(lines) and (not lines[i].strip() or lines[i][:1].isspace()):
            block.append(lines[i])
            i += 1
        if raw[:1] in ("|", ">"):
            fields[key] = _block_scalar(block, folded=raw[0] == ">")
        elif raw[:1] in ('"', "'"):
            fields[key] = _quoted(" ".join([raw, *(b.strip() for b in block if b.strip())]))
        else:
            # a plain scalar may go on over indented lines (folded into one)
            text = " ".join([raw, *(b.strip() for b in block if b.strip())]) if raw else ""
            fields[key] = _strip_comment(text)
    return fields


def _strip_comment(text: str) -> str:
    return re.split(r"\s#", text, maxsplit=1)[0].strip()


def _quoted(text: str) -> str:
    quote = text[0]
    closing = text.rfind(quote)
    if closing == 0:
        raise SkillFormatError(f"its front matter value {text!r} has no closing quote")
    inner = text[1:closing]
    if quote == "'":
        return inner.replace("''", "'")
    try:
        value = json.loads(f'"{inner}"')
    except ValueError:
        raise SkillFormatError(f"its front matter value {text!r} is not a valid string") from None
    return str(value)


def _block_scalar(block: list[str], *, folded: bool) -> str:
    content = [b for b in block]
    while content and not content[-1].strip():
        content.pop()
    indents = [len(b) - len(b.lstrip()) for b in content if b.strip()]
    cut = min(indents, default=0)
    texts = [b[cut:] if b.strip() else "" for b in content]
    if not folded:
        return "\n".join(texts)
    return " ".join(t.strip() for t in texts if t.strip())
