"""Prometheus's text exposition format, read: Envoy's ``/stats/prometheus`` and any ``/metrics``.

Written by the local mesh's telemetry and read by the core (what a fault hit, from Envoy's
counters), so the one parser lives here, below both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

Labels = tuple[tuple[str, str], ...]

_SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')
_ESCAPED = re.compile(r'\\[\\"n]')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


@dataclass(frozen=True)
class Sample:
    """One line of the Prometheus text format: a series and its value."""

    name: str
    labels: Labels
    value: float


def parse_text(text: str) -> Iterator[Sample]:
    """The samples of a Prometheus text exposition (comments and blank lines skipped)."""
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, number = line.rpartition(" ")
            name, labels = parse_series(series)
            yield Sample(name, tuple(labels.items()), float(number))


def parse_series(series: str) -> tuple[str, dict[str, str]]:
    """``name{label="value",...}``: the name and the labels."""
    match = _SERIES.match(series)
    if match is None:
        raise ValueError(f"not a Prometheus series: {series[:200]!r}")
    name, labels_text = match.groups()
    return name, {
        key: _ESCAPED.sub(lambda found: _UNESCAPE[found.group()], raw)
        for key, raw in _LABEL.findall(labels_text or "")
    }
