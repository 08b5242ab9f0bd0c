"""The report as one self-contained HTML file: inline CSS and SVG, no script, no fetch.

Nothing in it refers outside the file (no link, image, font or style sheet by URL): it opens the
same from a laptop, a CI artifact store or an air-gapped review room. Every text from a journal
is escaped; the whole page passes once more through the Redactor before it is written.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from chaosmesh_py import __version__
from chaosmesh_py.engine.redaction import Redactor
from chaosmesh_py.report import metrics, plots
from chaosmesh_py.report.model import ExperimentView
from chaosmesh_py.report.runs import GameDayRun, Inputs, read_inputs
from chaosmesh_py.report.trend import Trend, trend

STYLE = """
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Helvetica,Arial,sans-serif;
 margin:0 auto;max-width:1100px;padding:1.5em;color:#212121;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #e0e0e0;padding-bottom:.2em}
h3{margin-bottom:.3em}.meta{color:#616161;font-size:.9em}
section.experiment{border:1px solid #e0e0e0;border-radius:6px;padding:0 1em 1em;margin:1.2em 0}
.badge{display:inline-block;padding:.1em .6em;border-radius:1em;color:#fff;font-weight:600;
 font-size:.85em;vertical-align:middle}
.pass{background:#2e7d32}.fail,.aborted,.missed{background:#c62828}
.rollback-incomplete{background:#6a1b9a}.skipped,.paused,.invalid,.unknown,.not-run{background:#757575}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #e0e0e0;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#fafafa}.equal{color:#2e7d32;font-weight:600}.differs{color:#c62828;font-weight:600}
figure{margin:.6em 0}figure svg{max-width:100%;height:auto;display:block}
figcaption{color:#616161;font-size:.85em}ul.reasons li{margin:.2em 0}
code{font-size:.9em;background:#f5f5f5;padding:0 .2em}
"""


@dataclass(frozen=True)
class Options:
    prometheus_url: str | None = None  # else what each run recorded
    padding_s: float = 60.0
    rate_window: str = "30s"
    all_runs: bool = False  # every run's experiments in detail, not only each game day's latest
    # Prometheus URLs found down while rendering: asked once per report.
    unreachable: set[str] = field(default_factory=set)


def build(paths: Sequence[Path], options: Options, environ: Mapping[str, str] = os.environ) -> str:
    """The report's HTML for ``paths`` (see ``chaosmesh_py.report.runs``)."""
    inputs = read_inputs(paths, environ)
    return render(inputs, options)


def render(inputs: Inputs, options: Options) -> str:
    options = replace(options, unreachable=set())  # each report asks again
    body: list[str] = []
    for name, runs in inputs.by_gameday().items():
        body.append(_gameday(name, runs, options))
    if inputs.journals:
        body.append("<h2>Experiments</h2>")
        body += [_experiment(view, options) for view in inputs.journals]
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # No request may leave the file, not even for a favicon.
        '<link rel="icon" href="data:,">'
        f"<title>{_e(_title(inputs))}</title><style>{STYLE}</style></head><body>"
        f"<h1>{_e(_title(inputs))}</h1>"
        f'<p class="meta">chaosmesh {__version__} report, generated {generated}. '
        f"{_summary(inputs)}</p>" + "".join(body) + "</body></html>\n"
    )
    # The journals were redacted when written and again when read; a last look at the page.
    return Redactor(inputs.secrets).text(page)


def _title(inputs: Inputs) -> str:
    names = list(inputs.by_gameday())
    if names:
        return "Game day " + ", ".join(names)
    return "Chaos experiments" if len(inputs.journals) != 1 else inputs.journals[0].title


def _summary(inputs: Inputs) -> str:
    views = [*inputs.journals, *(e for r in inputs.runs for e in r.experiments)]
    passed = sum(v.outcome == "pass" for v in views)
    return f"{len(inputs.runs)} game-day run(s), {len(views)} experiment run(s), {passed} passed."


def _gameday(name: str, runs: Sequence[GameDayRun], options: Options) -> str:
    found = trend(name, runs)
    parts = [f"<h2>Game day {_e(name)}</h2>", _trend(found)]
    detailed = runs if options.all_runs else runs[-1:]
    for run in detailed:
        parts.append(_run(run, options))
    if len(detailed) < len(runs):
        parts.append(
            f'<p class="meta">{len(runs) - len(detailed)} earlier run(s) summarised above; '
            "<code>--all-runs</code> shows each in detail.</p>"
        )
    return "".join(parts)


def _trend(found: Trend) -> str:
    rate = "n/a" if found.pass_rate is None else f"{found.pass_rate:.0%}"
    recovery = found.recovery_s
    recovered = (
        f"median {sorted(recovery)[len(recovery) // 2]:.2f} s, worst {max(recovery):.2f} s"
        if recovery
        else "not measured"
    )
    slots = ", ".join(
        f"{count} {outcome}" for outcome, count in sorted(found.slot_outcomes.items())
    )
    parts = [
        "<h3>Across runs</h3><table>",
        f"<tr><th>pass rate</th><td>{found.passed} of {found.runs} runs that ran ({rate})"
        "</td></tr>",
        f"<tr><th>time to recover</th><td>{recovered}</td></tr>",
        f"<tr><th>slots recorded</th><td>{_e(slots) or 'none'}</td></tr></table>",
    ]
    if found.points:
        svg = plots.trend(
            [p.label for p in found.points],
            [p.pass_share for p in found.points],
            [p.outcome for p in found.points],
            [p.recovery_s for p in found.points],
        )
        parts.append(
            _figure(
                svg,
                "Each slot: the share of its experiments that passed (green: the run "
                "passed), a cross for a slot that did not run; below, time to recover.",
            )
        )
    unusual = [s for s in found.slots if s.outcome not in ("pass", "fail")]
    if unusual:
        parts.append("<table><tr><th>slot</th><th>recorded</th><th>runner</th><th>why</th></tr>")
        parts += [
            f"<tr><td>{_e(s.slot or s.slot_id)}</td><td>{_badge(s.outcome)}</td>"
            f"<td>{_e(s.runner)}</td><td>{_e(s.reason)}</td></tr>"
            for s in unusual
        ]
        parts.append("</table>")
    return "".join(parts)


def _run(run: GameDayRun, options: Options) -> str:
    when = run.slot.isoformat() if run.slot else "ad hoc"
    parts = [
        f"<h3>Run {_e(run.slot_id)} {_badge(run.outcome)}</h3>",
        f'<p class="meta">slot {_e(when)}; started {_time(run.started)}, ended '
        f"{_time(run.ended)}; {_e(run.directory)}</p>",
    ]
    if run.reasons:
        parts.append(_reasons(run.reasons))
    if run.preflight:
        parts.append("<table><tr><th>preflight</th><th></th><th>detail</th></tr>")
        parts += [
            f"<tr><td>{_e(name)}</td><td>{_badge('pass' if ok else 'fail')}</td>"
            f"<td>{_e(detail)}</td></tr>"
            for name, ok, detail in run.preflight
        ]
        parts.append("</table>")
    for label, event in (("aborted", run.abort), ("paused", run.pause)):
        if event:
            parts.append(f"<p><strong>{label}:</strong> {_e(event)}</p>")
    if run.notifications:
        parts.append(
            "<details><summary>notifications</summary><ul>"
            + "".join(f"<li>{_e(n)}</li>" for n in run.notifications)
            + "</ul></details>"
        )
    parts += [_experiment(view, options) for view in run.experiments]
    for title, outcome, reasons in run.unrun:
        parts.append(f"<p><strong>{_e(title)}</strong> {_badge(outcome)} (no journal)</p>")
        if reasons:
            parts.append(_reasons(reasons))
    return "".join(parts)


def _experiment(view: ExperimentView, options: Options) -> str:
    parts = [
        '<section class="experiment">',
        f"<h3>{_e(view.title)} {_badge(view.outcome)}</h3>",
        f'<p class="meta">run {_e(view.run_id or "?")}, {_time(view.start)} to '
        f"{_time(view.end)} ({(view.end - view.start).total_seconds():.1f} s); "
        f"{_e(view.source)}</p>",
    ]
    if view.reasons:
        parts.append(_reasons(view.reasons))
    parts.append(
        _figure(
            plots.timeline(view),
            "Timeline: green held, red did not; hatched, each fault's window from its injection "
            "to its removal, ▼ where it was seen in the data plane; | a guardrail check.",
        )
    )
    parts.append(_faults(view))
    probes = plots.probe_values(view)
    if probes:
        parts.append(
            _figure(
                probes,
                "Probe values: each measurement over its interval, the fault window shaded, the "
                "tolerance dashed (a circled point was out of tolerance).",
            )
        )
    parts.append(_metrics(view, options))
    parts.append(_evidence(view))
    parts.append("</section>")
    return "".join(parts)


def _faults(view: ExperimentView) -> str:
    if not view.faults:
        return "<p>No chaosmesh fault was injected.</p>"
    rows = [
        "<table><tr><th>fault</th><th>target</th><th>window</th><th>time to effect</th>"
        "<th>hits</th></tr>"
    ]
    for fault in view.faults:
        end = fault.end or view.end
        effect = (
            "not verified"
            if fault.effect_s is None
            else f"{fault.effect_s * 1000:.0f} ms ({fault.effect_how})"
        )
        rows.append(
            f"<tr><td>{_e(fault.activity)} ({_e(fault.kind)})</td><td>{_e(fault.target)}</td>"
            f"<td>{(end - fault.start).total_seconds():.2f} s"
            f"{'' if fault.end else ' (removal not seen)'}</td><td>{_e(effect)}</td>"
            f"<td>{'unknown' if fault.hits is None else fault.hits}</td></tr>"
        )
    rows.append("</table>")
    recovery = "not measured" if view.recovery_s is None else f"{view.recovery_s * 1000:.0f} ms"
    rows.append(f"<p>Time to recover (removal to fault seen gone): {recovery}.")
    if view.guardrail_checks or view.guardrail_breach:
        rows.append(f" Guardrail checks: {len(view.guardrail_checks)}.")
        if view.guardrail_breach:
            rows.append(f" <strong>Guardrail breached</strong>: {_e(view.guardrail_breach)}.")
    rows.append("</p>")
    return "".join(rows)


def _metrics(view: ExperimentView, options: Options) -> str:
    url = options.prometheus_url or view.prometheus_url
    if not url or not view.faults:
        return ""
    found = metrics.around(view, url, options.padding_s, options.rate_window, options.unreachable)
    parts = []
    if found.series:
        svg = plots.metric_series(view, metrics.as_plot_input(found.series), options.padding_s)
        parts.append(
            _figure(
                svg,
                f"Istio's metrics from {_e(url)} (rate over {_e(options.rate_window)}), the "
                "fault window shaded.",
            )
        )
    if found.problems:
        parts.append('<p class="meta">Prometheus: ' + _e("; ".join(found.problems)) + "</p>")
    return "".join(parts)


def _evidence(view: ExperimentView) -> str:
    if not view.evidence_recorded:
        return "<p>Rollback evidence: not recorded by this run's control.</p>"
    if not view.evidence:
        return "<p>Rollback evidence: the run wrote to no object.</p>"
    rows = [
        "<h4>Rollback evidence</h4><table><tr><th>resource</th><th>spec before the run vs "
        "after the rollback</th><th>before</th><th>after</th></tr>"
    ]
    for item in view.evidence:
        if item.equal is None:
            verdict = f'<span class="differs">unknown</span>: {_e(item.error)}'
        elif item.equal:
            verdict = '<span class="equal">equal</span>'
        else:
            verdict = (
                '<span class="differs">differs</span><ul>'
                + "".join(f"<li><code>{_e(d)}</code></li>" for d in item.differences)
                + "</ul>"
            )
        rows.append(
            f"<tr><td>{_e(item.resource)}</td><td>{verdict}</td><td><code>{_e(item.before)}"
            f"</code></td><td><code>{_e(item.after)}</code></td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{caption}</figcaption></figure>"


def _reasons(reasons: Sequence[str]) -> str:
    return '<ul class="reasons">' + "".join(f"<li>{_e(r)}</li>" for r in reasons) + "</ul>"


def _badge(outcome: str) -> str:
    css = outcome if outcome.replace("-", "").isalpha() else "unknown"
    return f'<span class="badge {_e(css)}">{_e(outcome)}</span>'


def _time(moment: datetime | None) -> str:
    return "?" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)
