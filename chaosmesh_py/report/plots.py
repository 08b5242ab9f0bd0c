"""The report's plots: matplotlib figures rendered to inline SVG.

matplotlib renders SVG with no system dependency (the Agg backend, no display, no browser).
Text stays text (``svg.fonttype: none``) in a font stack every system has: a tenth of the size
of glyphs drawn as paths, and searchable. Each figure's ids (and the references to them: clip
paths, markers, hatches) get the figure's own prefix, so two inline SVGs never share an id in one
HTML document (a clip path of one would clip the other).

Times are seconds from the run's start; the run's start in UTC is in the axis label.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chaosmesh_py.report.model import ExperimentView

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

OK, BAD, UNJUDGED = "#2e7d32", "#c62828", "#757575"
FAULT, WINDOW, TOLERANCE = "#ef6c00", "#ffe0b2", "#1565c0"
FONTS = ["DejaVu Sans", "Helvetica", "Arial", "Liberation Sans", "sans-serif"]
WIDTH_IN = 9.0

_figures = itertools.count(1)


@contextmanager
def _figure(
    rows: int, height_in: float, *, left_in: float = 0.8, bottom_in: float = 0.5
) -> Iterator[tuple[Figure, list[Axes]]]:
    """A figure of ``rows`` axes sharing x. Margins are fixed, in inches (room for the y
    labels on the left, the x label below): matplotlib's constrained layout would find them,
    at 1.6 times the CPU of the whole drawing (34 vs 58 ms for a timeline)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    with matplotlib.rc_context(
        {
            "svg.fonttype": "none",
            "font.family": "sans-serif",
            "font.sans-serif": FONTS,
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    ):
        # A Figure not registered with pyplot: nothing global to close, safe in threads.
        figure = Figure(figsize=(WIDTH_IN, height_in))
        figure.subplots_adjust(
            left=left_in / WIDTH_IN,
            right=1 - 0.15 / WIDTH_IN,
            bottom=bottom_in / height_in,
            top=1 - 0.3 / height_in,
            hspace=0.45 if rows > 1 else 0.2,
        )
        axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
        for each in axes:
            # Fewer ticks read as well, and ticks are most of matplotlib's drawing time.
            each.xaxis.set_major_locator(MaxNLocator(8))
            each.yaxis.set_major_locator(MaxNLocator(5))
        yield figure, list(axes)


_ID = re.compile(r'(\bid="|url\(#|href="#)([^")]+)')


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    prefix = f"f{next(_figures)}-"
    # Inline in HTML: no XML declaration or DOCTYPE, the <svg> element only.
    return _ID.sub(lambda m: m[1] + prefix + m[2], text[text.index("<svg") :])


def _seconds(moment: datetime, origin: datetime) -> float:
    return (moment - origin).total_seconds()


def timeline(view: ExperimentView) -> str:
    """Phases, each fault's window (time to effect, hits), guardrail checks, rollbacks."""
    origin = view.start
    span = max(_seconds(view.end, origin), 1e-3)
    minimum = span / 250  # a 1 ms phase must still be seen
    rows: list[tuple[str, Any]] = []
    for phase in view.phases:
        rows.append((phase.name, phase))
        if phase.name.startswith("method"):
            rows += [(f"fault: {f.activity}", f) for f in view.faults]
            if view.guardrail_checks or view.guardrail_breach:
                rows.append(("guardrail checks", None))
    with _figure(1, 0.9 + 0.32 * len(rows), left_in=2.9) as (figure, (axes,)):
        labels = []
        for index, (label, item) in enumerate(rows):
            y = len(rows) - 1 - index
            labels.append((y, label))
            if item is None:
                times = [_seconds(t, origin) for t in view.guardrail_checks]
                axes.plot(times, [y] * len(times), "|", color=TOLERANCE, markersize=9)
                if view.guardrail_breach:
                    axes.plot([times[-1] if times else 0], [y], "x", color=BAD, markersize=10)
                continue
            if hasattr(item, "activity"):  # a fault window
                start = _seconds(item.start, origin)
                end = _seconds(item.end or view.end, origin)
                axes.barh(
                    y,
                    max(end - start, minimum),
                    left=start,
                    color=WINDOW,
                    edgecolor=FAULT,
                    hatch="//",
                    height=0.6,
                )
                if item.effect_s is not None:
                    axes.plot([start + item.effect_s], [y], "v", color=FAULT, markersize=7)
                hits = "hits unknown" if item.hits is None else f"{item.hits} hits"
                effect = (
                    "not verified"
                    if item.effect_s is None
                    else f"live {item.effect_s * 1000:.0f} ms"
                )
                axes.annotate(
                    _plain(f"{item.kind}: {effect}, {hits}"),
                    (end, y),
                    xytext=(4, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=8,
                )
                continue
            start = _seconds(item.start, origin)
            width = max(_seconds(item.end, origin) - start, minimum)
            color = UNJUDGED if item.ok is None else (OK if item.ok else BAD)
            axes.barh(y, width, left=start, color=color, height=0.6)
        axes.set_yticks([y for y, _ in labels], [_short(label, 42) for _, label in labels])
        axes.set_xlim(-span * 0.02, span * 1.5)  # room for the faults' labels
        axes.set_xlabel(f"seconds from {origin:%Y-%m-%d %H:%M:%S} UTC")
        axes.grid(axis="x", alpha=0.3)
        return _svg(figure)


def probe_values(view: ExperimentView) -> str | None:
    """Each probe's numbers over the run (a line over each measurement's interval), the fault
    window shaded, the tolerance drawn; None when no probe gave a number."""
    labels = sorted({label for s in view.samples for label in s.values})
    if not labels:
        return None
    origin = view.start
    with _figure(len(labels), 0.8 + 1.7 * len(labels)) as (figure, axes_list):
        probes = sorted({s.probe for s in view.samples})
        colors = dict(zip(probes, _palette(len(probes)), strict=True))
        for axes, label in zip(axes_list, labels, strict=True):
            _shade_window(axes, view, origin)
            for band in {
                s.tolerance for s in view.samples if s.tolerance and s.tolerance[0] == label
            }:
                assert band is not None
                _tolerance(axes, band[1], band[2])
            for probe in probes:
                points = [s for s in view.samples if s.probe == probe and label in s.values]
                if not points:
                    continue
                xs = [_seconds(s.end, origin) for s in points]
                ys = [s.values[label] for s in points]
                axes.plot(
                    xs,
                    ys,
                    "o:",
                    color=colors[probe],
                    label=_plain(probe),
                    markersize=5,
                    linewidth=1,
                )
                for sample in points:
                    axes.hlines(
                        sample.values[label],
                        _seconds(sample.start, origin),
                        _seconds(sample.end, origin),
                        color=colors[probe],
                        linewidth=3,
                        alpha=0.5,
                    )
                    if sample.met is False:
                        axes.plot(
                            [_seconds(sample.end, origin)],
                            [sample.values[label]],
                            "o",
                            markersize=10,
                            markerfacecolor="none",
                            markeredgecolor=BAD,
                        )
            axes.set_ylabel(_plain(label))
            axes.grid(alpha=0.3)
        axes_list[0].legend(loc="best", fontsize=7)
        axes_list[-1].set_xlabel(f"seconds from {origin:%Y-%m-%d %H:%M:%S} UTC")
        return _svg(figure)


def metric_series(
    view: ExperimentView,
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    padding_s: float,
) -> str:
    """Prometheus range queries: one subplot per query, padding before and after, the fault
    window shaded. ``series`` holds (title, [(unix_s, value), ...])."""
    origin = view.start
    with _figure(len(series), 0.8 + 1.7 * len(series)) as (figure, axes_list):
        for axes, (title, points) in zip(axes_list, series, strict=True):
            _shade_window(axes, view, origin)
            xs = [t - origin.timestamp() for t, _ in points]
            axes.plot(xs, [v for _, v in points], "-", color=TOLERANCE, linewidth=1.5)
            axes.set_title(_plain(title), fontsize=8, loc="left")
            axes.grid(alpha=0.3)
        span = _seconds(view.end, origin)
        axes_list[-1].set_xlim(-padding_s, span + padding_s)
        axes_list[-1].set_xlabel(
            f"seconds from {origin:%Y-%m-%d %H:%M:%S} UTC ({padding_s:g} s padding each side)"
        )
        return _svg(figure)


def trend(
    labels: Sequence[str],
    pass_share: Sequence[float | None],
    outcomes: Sequence[str],
    recovery_s: Sequence[float | None],
) -> str:
    """One bar per slot: the share of its experiments that passed (colored by the run's
    outcome; a cross for a slot that did not run), and the time to recover."""
    with _figure(2, 4.6, bottom_in=1.3) as (figure, (shares, recovery)):
        xs = list(range(len(labels)))
        for x, share, outcome in zip(xs, pass_share, outcomes, strict=True):
            if share is None:
                shares.plot(
                    [x], [0.02], "x", color=BAD if outcome == "missed" else UNJUDGED, markersize=9
                )
                shares.annotate(_plain(outcome), (x, 0.08), ha="center", fontsize=7, rotation=90)
            else:
                color = OK if outcome == "pass" else (UNJUDGED if outcome == "skipped" else BAD)
                # A run none of whose experiments passed still shows, in its color.
                shares.bar(x, max(share, 0.02), color=color, width=0.6)
        shares.set_ylim(0, 1.05)
        shares.set_ylabel("experiments passed")
        shares.grid(axis="y", alpha=0.3)
        measured = [(x, r) for x, r in zip(xs, recovery_s, strict=True) if r is not None]
        if measured:
            recovery.plot([x for x, _ in measured], [r for _, r in measured], "o-", color=FAULT)
        recovery.set_ylabel("time to recover (s)")
        recovery.set_ylim(bottom=0)
        recovery.grid(alpha=0.3)
        recovery.set_xticks(
            xs, [_short(label, 20) for label in labels], rotation=45, ha="right", fontsize=7
        )
        return _svg(figure)


def _shade_window(axes: Axes, view: ExperimentView, origin: datetime) -> None:
    for fault in view.faults:
        axes.axvspan(
            _seconds(fault.start, origin),
            _seconds(fault.end or view.end, origin),
            color=WINDOW,
            alpha=0.7,
            label="_fault window",
        )


def _tolerance(axes: Axes, low: float, high: float) -> None:
    if low == high:
        axes.axhline(low, color=TOLERANCE, linestyle="--", linewidth=1, label="_tolerance")
    else:
        axes.axhspan(low, high, color=TOLERANCE, alpha=0.12, label="_tolerance")
        for bound in (low, high):
            axes.axhline(bound, color=TOLERANCE, linestyle="--", linewidth=1, label="_tolerance")


def _palette(count: int) -> list[str]:
    base = ["#1565c0", "#6a1b9a", "#00838f", "#ad1457", "#4e342e", "#558b2f", "#37474f"]
    return [base[i % len(base)] for i in range(count)]


def _short(text: str, limit: int) -> str:
    return _plain(text if len(text) <= limit else text[: limit - 1] + "…")


def _plain(text: str) -> str:
    """``text`` as matplotlib shows it literally: a $ would start its math notation."""
    return text.replace("$", r"\$")
