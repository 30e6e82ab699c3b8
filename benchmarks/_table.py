"""What every benchmark script shares about results: measuring the selected benchmarks while the
machine is quiet, the table it prints (plain text) and saves (Markdown), and the lines that say
which machine and which code were measured."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any


def make_row(
    label: str,
    unit: str,
    gateway: float | None,
    baseline: float | None,
    target: str = "info",
    ok: bool | None = None,
    other: float | None = None,
) -> dict[str, Any]:
    """One row of a result table; ``ratio`` is gateway ÷ baseline when both are known."""
    ratio = gateway / baseline if gateway is not None and baseline else None
    return {"benchmark": label, "unit": unit, "gateway": gateway, "baseline": baseline,
            "ratio": ratio, "target": target, "pass": ok, "other_cpu": other}  # fmt: skip


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    for limit, spec in ((1000, ",.0f"), (100, ".0f"), (10, ".1f")):
        if abs(value) >= limit:
            return format(value, spec)
    return f"{value:.2f}"


def _header(baseline: str) -> list[str]:
    return ["benchmark", "unit", "aleph_trio", baseline, "ratio", "target", "result", "other CPU"]


def _cells(row: dict[str, Any]) -> list[str]:
    ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
    verdict = {True: "PASS", False: "FAIL", None: ""}[row["pass"]]
    other = "" if row["other_cpu"] is None else f"{row['other_cpu']:.2f}"
    return [row["benchmark"], row["unit"], fmt(row["gateway"]), fmt(row["baseline"]), ratio,
            row["target"], verdict, other]  # fmt: skip


def format_table(rows: list[dict[str, Any]], *, baseline: str = "baseline") -> str:
    header = _header(baseline)
    lines = [header] + [_cells(row) for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for i, line in enumerate(lines):
        cells = [
            c.rjust(w) if j in (2, 3, 4, 7) else c.ljust(w)
            for j, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def format_markdown(rows: list[dict[str, Any]], *, baseline: str = "baseline") -> str:
    out = ["| " + " | ".join(_header(baseline)) + " |", "|---|---|--:|--:|--:|---|---|--:|"]
    for row in rows:
        cells = _cells(row)
        if cells[0].startswith(" "):
            cells[0] = "&nbsp;&nbsp;&nbsp;" + cells[0].strip()
        cells[6] = {"FAIL": "**FAIL**", "PASS": "pass"}.get(cells[6], "")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def write_report(
    output: Path,
    *,
    started: float,
    machine: dict[str, Any],
    settings: dict[str, Any],
    rows: list[dict[str, Any]],
    results: dict[str, Any],
    baseline: str = "baseline",
) -> dict[str, Any]:
    """Save every raw figure to ``output`` (JSON) and the table beside it (Markdown)."""
    report = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_time_s": round(time.perf_counter() - started, 1),
        "machine": machine,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in settings.items()},
        "summary": rows,
        "results": results,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=list) + "\n")
    output.with_suffix(".md").write_text(format_markdown(rows, baseline=baseline) + "\n")
    return report


def keep_quietest(
    name: str,
    measure: Callable[[], dict[str, Any]],
    *,
    retries: int,
    quiet: float,
    in_budget: Callable[[], bool],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Measure; again (``retries`` times at most, while in budget) when other processes used
    more than ``quiet`` CPU meanwhile. Keeps the least disturbed attempt."""
    best: dict[str, Any] | None = None
    for attempt in range(1, retries + 2):
        got = measure()
        got["attempt"] = attempt
        if best is None or got["background_cores"] < best["background_cores"]:
            best = got
        if got["background_cores"] <= quiet or not in_budget():
            break
        if attempt <= retries:
            say(f"{name}: other processes used {got['background_cores']:.2f} CPU "
                "meanwhile; measuring again")  # fmt: skip
    assert best is not None
    return best


def measure_selected(
    names: Iterable[str],
    runners: Mapping[str, tuple[str, Callable[[], dict[str, Any]]]],
    *,
    retries: int,
    quiet: float,
    in_budget: Callable[[], bool],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Each named benchmark (``runners`` maps a name to its announcement and its measurement),
    in order, through :func:`keep_quietest`."""
    results: dict[str, Any] = {}
    for name in names:
        text, measure = runners[name]
        say(text)
        results[name] = keep_quietest(
            name, measure, retries=retries, quiet=quiet, in_budget=in_budget, say=say
        )
    return results


def machine_line(machine: dict[str, Any], libraries: Iterable[str], extra: str = "") -> str:
    """``machine: <cpu>, <n> CPUs, <GiB>, <python>, [extra, ]<library versions>, kernel``."""
    m, v = machine, machine["versions"]
    parts = [m["cpu_model"], f"{m['cpus']} CPUs", f"{m['memory_gib']} GiB", m["python"]]
    parts += [extra] if extra else []
    parts += [f"{name} {v[name]}" for name in libraries]
    return f"machine: {', '.join(parts)}, kernel {m['kernel']}"


def code_line(machine: dict[str, Any]) -> str:
    """``code: commit <sha>[ + modified src/], src sha256 <digest>``."""
    modified = " + modified src/" if machine["src_modified"] else ""
    return f"code: commit {machine['commit']}{modified}, src sha256 {machine['src_sha256']}"


def print_outcome(rows: list[dict[str, Any]], report: dict[str, Any], output: object) -> None:
    """The last lines of every benchmark's output: wall time, where the figures went, and the
    targets missed, if any."""
    print(f"wall time {report['wall_time_s']} s; results in {output}")
    failed = [row["benchmark"].strip() for row in rows if row["pass"] is False]
    if failed:
        print("targets missed: " + "; ".join(failed))
