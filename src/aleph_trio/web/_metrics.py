"""Prometheus metrics: counters and a histogram kept in plain dicts, rendered in the text
exposition format (version 0.0.4) when scraped.

Recording is a dict update and a ``bisect`` on the hot path of every request; everything that
can be read off the gateway's state (connections, runs, queue depths) is a gauge computed at
scrape time instead, so it costs nothing in between. ``docs/design.md`` says why this is not
``prometheus_client``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from typing import final

import attrs

__all__ = [
    "Counter",
    "Family",
    "Histogram",
    "Sample",
    "counter_family",
    "gauge",
    "histogram_family",
    "render",
]

#: Request latency buckets in seconds: from 100 µs (an echo) to a minute (a long tool call).
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


@attrs.frozen
class Sample:
    """One line of a metric family: ``name{labels} value``."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


@final
class Counter:
    """A counter with a fixed tuple of label names; ``inc(("echo", "0"))``."""

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(label_names)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, labels: tuple[str, ...] = (), amount: float = 1.0) -> None:
        values = self.values
        values[labels] = values.get(labels, 0.0) + amount

    def samples(self) -> Iterable[Sample]:
        for labels, value in sorted(self.values.items()):
            yield Sample(
                self.name + "_total", tuple(zip(self.label_names, labels, strict=True)), value
            )


@final
class Histogram:
    """A histogram with one label (a request's method) and fixed bucket bounds."""

    def __init__(
        self,
        name: str,
        help_text: str,
        label_name: str,
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        self.name = name
        self.help = help_text
        self.label_name = label_name
        self.bounds = tuple(buckets)
        #: Per label: one count per bucket (not cumulative), then +Inf, then the sum.
        self.rows: dict[str, list[float]] = {}

    def observe(self, label: str, value: float) -> None:
        row = self.rows.get(label)
        if row is None:
            row = self.rows[label] = [0.0] * (len(self.bounds) + 2)
        row[bisect.bisect_left(self.bounds, value)] += 1
        row[-1] += value

    def samples(self) -> Iterable[Sample]:
        for label, row in sorted(self.rows.items()):
            cumulative = 0.0
            for bound, count in zip((*self.bounds, math.inf), row[:-1], strict=True):
                cumulative += count
                labels = ((self.label_name, label), ("le", _number(bound)))
                yield Sample(self.name + "_bucket", labels, cumulative)
            yield Sample(self.name + "_sum", ((self.label_name, label),), row[-1])
            yield Sample(self.name + "_count", ((self.label_name, label),), cumulative)


@attrs.frozen
class Family:
    """A metric family as it is rendered: its ``# HELP`` and ``# TYPE`` lines, then samples."""

    name: str
    kind: str  # counter | gauge | histogram
    help: str
    samples: Sequence[Sample]


def render(families: Iterable[Family]) -> str:
    """The Prometheus text exposition format, version 0.0.4."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for sample in family.samples:
            if sample.labels:
                inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sample.labels)
                lines.append(f"{sample.name}{{{inner}}} {_number(sample.value)}")
            else:
                lines.append(f"{sample.name} {_number(sample.value)}")
    lines.append("")
    return "\n".join(lines)


def counter_family(counter: Counter) -> Family:
    return Family(counter.name, "counter", counter.help, list(counter.samples()))


def histogram_family(histogram: Histogram) -> Family:
    return Family(histogram.name, "histogram", histogram.help, list(histogram.samples()))


def gauge(name: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]) -> Family:
    return Family(
        name,
        "gauge",
        help_text,
        [Sample(name, tuple(labels.items()), value) for labels, value in samples],
    )


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")
