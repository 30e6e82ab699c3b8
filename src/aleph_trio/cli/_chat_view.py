"""What ``aleph-trio chat`` shows: a conversation on a terminal, JSON lines through a pipe."""

from __future__ import annotations

from typing import Any, Protocol

from ..client import ClientEvent
from ._output import Output, compact, event_object

__all__ = ["ChatView", "JsonView", "TerminalView", "chat_view"]

APPROVAL_QUESTION = "allow once (o), always (a) or deny (d)? "
DECIDED = {
    "allow-once": "allowed once",
    "allow-always": "allowed, now and from now on",
    "deny": "denied",
    "timeout": "not answered in time: denied",
    "cancelled": "withdrawn",
}
TOOL_OUTPUT_LINES = 12
DIM, PLAIN = "\x1b[2m", "\x1b[0m"


class ChatView(Protocol):
    def header(self, session_key: str, earlier: int | None) -> None: ...
    def prompt(self, text: str) -> None: ...
    def answered(self) -> None: ...
    def typed(self, prompt: str, line: str) -> None: ...
    def run_started(self, result: dict[str, Any]) -> None: ...
    def event(self, event: ClientEvent) -> None: ...
    def note(self, text: str) -> None: ...
    def approval_prompt(self, data: dict[str, Any]) -> str: ...
    def goodbye(self, session_key: str) -> None: ...
    def interrupted(self) -> None: ...


def question_text(data: dict[str, Any]) -> str:
    options = data.get("options") or []
    listed = "".join(f" [{i}] {option}" for i, option in enumerate(options, 1))
    return f"? {data.get('question', '')}{listed} "


def resume_hint(session_key: str) -> str:
    return f"aleph-trio chat --session {session_key}"


class TerminalView:
    """Text as it streams, tools and approvals in brackets, prompts on stdout."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self._column0 = True
        self._thinking = False
        self._text = ""

    def _write(self, text: str) -> None:
        if text:
            self.out.write(text)
            self._column0 = text.endswith("\n")

    def _block(self, text: str) -> None:
        """``text`` on lines of its own."""
        if not self._column0:
            self._write("\n")
        self._write(text + "\n")

    def _plain(self) -> None:
        if self._thinking:
            self._write(PLAIN)
            self._thinking = False

    def header(self, session_key: str, earlier: int | None) -> None:
        self._block(f"session {session_key}  (continue later: {resume_hint(session_key)})")
        if earlier:
            more = "+" if earlier >= 1000 else ""
            self._block(f"{earlier}{more} earlier messages in this session")
        self._block("type a message; Ctrl-D quits")

    def prompt(self, text: str) -> None:
        self._plain()
        if not self._column0:
            self._write("\n")
        self._write(text)

    def answered(self) -> None:
        self._column0 = True  # the terminal echoed the Enter

    def typed(self, prompt: str, line: str) -> None:
        """A line read from a pipe, shown as if typed, so the transcript reads as one."""
        self.prompt(prompt)
        self._write(line + "\n")

    def run_started(self, result: dict[str, Any]) -> None:
        self._text = ""
        if result.get("status") == "queued":
            self.note("queued: another run is active on this session")

    def note(self, text: str) -> None:
        self._plain()
        self._block(f"[{text}]")

    def approval_prompt(self, data: dict[str, Any]) -> str:
        return APPROVAL_QUESTION  # the command and cwd are shown with the event

    def goodbye(self, session_key: str) -> None:
        self._block(f"session {session_key}  (continue: {resume_hint(session_key)})")

    def interrupted(self) -> None:
        self._plain()
        if not self._column0:
            self._write("\n")  # the shell's prompt starts on a line of its own

    def event(self, event: ClientEvent) -> None:
        data = event.data
        topic = event.topic
        if topic == "stream.thinking":
            if not self._thinking:
                self._write(DIM)
                self._thinking = True
            self._write(str(data.get("content", "")))
            return
        self._plain()
        if topic == "stream.chunk":
            content = str(data.get("content", ""))
            self._text += content
            self._write(content)
        elif topic == "stream.end":
            self._complete(str(data.get("content") or ""))
        elif topic == "stream.tool_start":
            self._tool_start(data)
        elif topic == "stream.tool_end":
            self._tool_end(data)
        elif topic == "exec.approval_requested":
            self._block("[approval] the agent wants to run:")
            self._block("    " + str(data.get("command", "")).replace("\n", "\n    "))
            self._block(f"  in {data.get('cwd', '')}")
        elif topic == "exec.approval_resolved":
            decision = str(data.get("decision"))
            by = data.get("resolved_by")
            self.note(DECIDED.get(decision, decision) + (f" by {by}" if by else ""))
        elif topic == "agent.error":
            error = data.get("error") or {}
            self.note(f"error {error.get('code')}: {error.get('message')}")
        elif topic == "agent.cancelled":
            self.note(f"cancelled: {data.get('reason')}")
        elif topic == "agent.completed" and not self._column0:
            self._write("\n")

    def _complete(self, content: str) -> None:
        """``stream.end`` has the whole answer: show what the chunks missed (after a
        reconnect, chunks are not replayed)."""
        if content == self._text:
            return
        if content.startswith(self._text):
            self._write(content[len(self._text) :])
        else:
            self._block(content)
        self._text = content

    def _tool_start(self, data: dict[str, Any]) -> None:
        tool, params = data.get("tool"), data.get("input")
        if tool == "exec" and isinstance(params, dict) and "command" in params:
            self._block(f"[exec] {params['command']}")
        elif tool == "ask_user":
            return  # the question itself follows
        else:
            self._block(f"[{tool}] {compact(params)}")

    def _tool_end(self, data: dict[str, Any]) -> None:
        if data.get("tool") == "ask_user" and not data.get("is_error"):
            return
        lines = str(data.get("output", "")).splitlines() or [""]
        shown = lines[:TOOL_OUTPUT_LINES]
        if len(lines) > TOOL_OUTPUT_LINES:
            shown.append(f"… {len(lines) - TOOL_OUTPUT_LINES} more lines")
        label = "failed" if data.get("is_error") else "result"
        self._block(f"[{data.get('tool')} {label}]\n" + "\n".join("  " + line for line in shown))


class JsonView:
    """Each event of the run as a JSON line on stdout; prompts and notes on stderr."""

    def __init__(self, out: Output) -> None:
        self.out = out

    def header(self, session_key: str, earlier: int | None) -> None:
        self.out.json_line({"session_key": session_key, "earlier_messages": earlier})

    def prompt(self, text: str) -> None:
        self.out.stderr.write(text)
        self.out.stderr.flush()

    def answered(self) -> None:
        pass

    def typed(self, prompt: str, line: str) -> None:
        pass

    def run_started(self, result: dict[str, Any]) -> None:
        self.out.json_line({"run": result})

    def event(self, event: ClientEvent) -> None:
        self.out.json_line(event_object(event))

    def note(self, text: str) -> None:
        self.out.note(text)

    def approval_prompt(self, data: dict[str, Any]) -> str:
        return f"run {data.get('command')!r} in {data.get('cwd')}? {APPROVAL_QUESTION}"

    def goodbye(self, session_key: str) -> None:
        pass

    def interrupted(self) -> None:
        pass


def chat_view(out: Output) -> ChatView:
    return JsonView(out) if out.json else TerminalView(out)
