"""The exec approval policy (PROTOCOL §10): which commands run, which are refused, which wait
for a human. It lives in ``<data_dir>/exec-approvals.toml``.

::

    mode = "ask"                  # deny | ask | allowlist | full
    ask_timeout_ms = 120000
    allow = ["git status", "ls *"]
    deny = ["rm -rf *", "*sudo *"]

    [agents.builder]              # per-agent: mode and ask_timeout_ms replace the global ones,
    mode = "allowlist"            # allow and deny add to the global lists
    allow = ["make *", "pytest*"]

Patterns are globs (``*``, ``?``, ``[…]``) over the whole command line. ``deny`` always wins;
``full`` allows everything not denied, ``allowlist`` denies what no ``allow`` matches, ``ask``
waits for a human for it, ``deny`` refuses everything. A file that cannot be read as a valid
policy is never guessed at: every command is denied until it is fixed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import attrs
import msgspec
import tomli_w
from msgspec import Meta

from ..kernel import ValidationFailed, convert, write_private

__all__ = [
    "AgentPolicy",
    "Policy",
    "PolicyFile",
    "Verdict",
    "escape_glob",
    "policy_hash",
    "read_policy_file",
    "write_policy_file",
]

FILE_NAME: Final = "exec-approvals.toml"

Mode = Literal["deny", "ask", "allowlist", "full"]
Pattern = Annotated[str, Meta(min_length=1, max_length=4096)]
Patterns = Annotated[list[Pattern], Meta(max_length=10_000)]
TimeoutMs = Annotated[int, Meta(ge=1000, le=86_400_000)]


@attrs.frozen
class AgentPolicy:
    mode: Mode | None = None
    ask_timeout_ms: TimeoutMs | None = None
    allow: Patterns = attrs.Factory(list)
    deny: Patterns = attrs.Factory(list)


@attrs.frozen
class Policy:
    mode: Mode = "ask"
    ask_timeout_ms: TimeoutMs = 120_000
    allow: Patterns = attrs.Factory(list)
    deny: Patterns = attrs.Factory(list)
    agents: dict[str, AgentPolicy] = attrs.Factory(dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        for agent in out["agents"].values():
            for key in ("mode", "ask_timeout_ms"):
                if agent.get(key) is None:
                    agent.pop(key, None)
        return out

    def verdict(self, command: str, agent_id: str) -> Verdict:
        """What the policy says about ``command`` run by ``agent_id``."""
        agent = self.agents.get(agent_id, AgentPolicy())
        mode = agent.mode or self.mode
        timeout_ms = agent.ask_timeout_ms or self.ask_timeout_ms
        if _matches(command, [*self.deny, *agent.deny]):
            return Verdict("deny", "matches a deny pattern", timeout_ms)
        if mode == "deny":
            return Verdict("deny", "the policy mode is deny", timeout_ms)
        if mode == "full":
            return Verdict("allow", "the policy mode is full", timeout_ms)
        if _matches(command, [*self.allow, *agent.allow]):
            return Verdict("allow", "matches an allow pattern", timeout_ms)
        if mode == "allowlist":
            return Verdict("deny", "no allow pattern matches (allowlist mode)", timeout_ms)
        return Verdict("ask", "needs a human decision", timeout_ms)

    def allowing(self, command: str) -> Policy:
        """This policy with ``command`` (exactly) added to ``allow``."""
        pattern = escape_glob(command)
        if pattern in self.allow:
            return self
        return attrs.evolve(self, allow=[*self.allow, pattern])


@attrs.frozen
class Verdict:
    action: Literal["allow", "deny", "ask"]
    reason: str
    ask_timeout_ms: int


#: What every command gets while the policy file is broken.
DENY_ALL: Final = Policy(mode="deny")


def _matches(command: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(command, p) for p in patterns)


def escape_glob(text: str) -> str:
    """A pattern matching exactly ``text``."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def policy_hash(policy: Policy) -> str:
    """SHA-256 hex of the policy's canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(policy.to_json(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@attrs.frozen
class PolicyFile:
    """The policy as read from disk: ``policy`` in force, with ``errors`` if the file is bad."""

    policy: Policy
    hash: str
    errors: list[dict[str, str]] = attrs.Factory(list)
    stamp: tuple[int, int, int] | None = None  #: (inode, size, mtime_ns) of what was read

    @property
    def valid(self) -> bool:
        return not self.errors


def parse_policy(value: object) -> Policy:
    """A policy from JSON-like data; raises ``ValidationFailed`` listing every problem."""
    return convert(value, Policy)


def read_policy_file(directory: Path) -> PolicyFile:
    """Read ``exec-approvals.toml`` (blocking). No file means the default policy."""
    path = directory / FILE_NAME
    try:
        stat = path.stat()
        raw = path.read_bytes()
    except FileNotFoundError:
        policy = Policy()
        return PolicyFile(policy, policy_hash(policy))
    stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    try:
        policy = parse_policy(tomllib.loads(raw.decode()))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        errors = [{"path": "", "message": f"not valid TOML: {exc}"}]
    except ValidationFailed as exc:
        errors = exc.errors(root="")
    else:
        return PolicyFile(policy, policy_hash(policy), stamp=stamp)
    # The hash of a broken file is that of its bytes, so exec.approvals.set can replace it.
    return PolicyFile(DENY_ALL, hashlib.sha256(raw).hexdigest(), errors, stamp)


def file_stamp(directory: Path) -> tuple[int, int, int] | None:
    try:
        stat = (directory / FILE_NAME).stat()
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def write_policy_file(directory: Path, policy: Policy) -> PolicyFile:
    """Write the policy atomically (temp file, fsync, rename; mode 0600) and read it back."""
    write_private(directory / FILE_NAME, _to_toml(policy))
    return read_policy_file(directory)


def _to_toml(policy: Policy) -> bytes:
    doc = policy.to_json()
    if not doc["agents"]:
        del doc["agents"]
    header = (
        "# Exec approval policy of aleph_trio. Written by exec.approvals.set; hand edits are\n"
        "# picked up at the next command. mode: deny | ask | allowlist | full.\n"
    )
    return (header + tomli_w.dumps(doc)).encode()
