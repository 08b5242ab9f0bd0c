"""`chaosmesh report`'s data: what it reads from journals and game-day runs, and the page it
writes (self-contained, escaped, secrets hidden). The page in a real browser:
tests/e2e/test_report.py."""

import json
import re
import socket
import time
from datetime import timedelta

import pytest

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.report import html
from chaosmesh_py.report.model import experiment_view
from chaosmesh_py.report.runs import Inputs, read_inputs
from chaosmesh_py.report.trend import trend
from tests.badinput.test_cli import assert_refused, chaosmesh
from tests.report_data import T0, gameday_run, journal


def seconds(value):
    return timedelta(seconds=value)


def test_a_fault_window_runs_from_its_injection_to_its_first_removal():
    view = experiment_view(journal(), "j.json")
    (fault,) = view.faults
    assert (fault.start, fault.end) == (T0 + seconds(1.0), T0 + seconds(7.05))
    assert fault.effect_s == 0.03
    assert fault.hits == 40
    assert fault.kind == "delay"
    assert fault.target == "bookinfo/ratings"
    # From the start of the removal to the fault seen gone (the removal's own check).
    assert view.recovery_s == pytest.approx(0.04)


def test_when_the_control_removed_the_fault_its_rollback_ends_the_window():
    view = experiment_view(journal(rollback_activity=False), "j.json")
    assert view.faults[0].end == T0 + seconds(7.15)
    assert view.recovery_s == pytest.approx(0.04)


def test_a_guardrails_rollback_ends_the_window_when_it_removed_the_fault():
    breached = journal(rollback_activity=False, breach="0.4 is outside [0, 0.1]")
    (removal,) = breached["chaosmesh"]["rollback"]
    removal["removed_at"] = (T0 + seconds(3.2)).isoformat()
    breached["chaosmesh"]["rollback_started"] = (T0 + seconds(3.1)).isoformat()
    view = experiment_view(breached, "j.json")
    assert view.faults[0].end == T0 + seconds(3.2)
    assert view.recovery_s == pytest.approx(0.04)


def test_phases_follow_chaos_toolkits_order_and_say_what_held():
    view = experiment_view(journal(after_met=False, verdict="fail"), "j.json")
    assert [(p.name, p.ok) for p in view.phases] == [
        ("steady state before", True),
        ("method (faults)", True),
        # Chaos Toolkit probes it with the faults still in place, before the rollbacks.
        ("steady state after the method", False),
        ("rollbacks", True),
        ("chaosmesh rollback", True),
    ]


def test_probe_values_carry_the_tolerance_they_are_checked_against():
    view = experiment_view(journal(after_met=False), "j.json")
    page = [s for s in view.samples if s.probe == "page-whole-for-jason"]
    assert [(s.phase, s.values["whole pages (share)"], s.met) for s in page] == [
        ("before", 1.0, True),
        ("after the method", 0.0, False),
    ]
    assert page[0].values["median page time (ms)"] == 50.0
    assert page[0].tolerance == ("whole pages (share)", 1.0, 1.0)
    (load,) = [s for s in view.samples if s.probe == "ratings-load"]
    assert load.values == {"error ratio": 0.0, "p99 latency (ms)": 40.0}
    assert load.tolerance == ("error ratio", 0.0, 0.01)


def test_the_verdict_is_the_one_the_run_was_graded_with():
    recorded = journal(verdict="fail", reasons=["a fault hit nothing"])
    assert experiment_view(recorded, "j").outcome == "fail"
    assert experiment_view(recorded, "j").reasons == ("a fault hit nothing",)
    # The gate's, when a game day's summary gives it.
    assert experiment_view(recorded, "j", ("pass", [])).outcome == "pass"
    # Without the control's entry, graded now by the gate's rules: nothing proves a fault.
    bare = journal()
    del bare["chaosmesh"]
    view = experiment_view(bare, "j")
    assert view.outcome == "fail"
    assert not view.evidence_recorded


def test_guardrail_checks_and_a_breach_are_read():
    view = experiment_view(journal(guardrail_checks=3, breach="0.4 is outside [0, 0.1]"), "j")
    assert view.guardrail_checks == tuple(T0 + seconds(1.0 + i) for i in range(3))
    assert "others-fine: 0.4 is outside [0, 0.1]" in view.guardrail_breach


def test_rollback_evidence_names_each_difference():
    differing = {
        "resource": "VirtualService bookinfo/ratings",
        "equal": False,
        "before": {"present": True, "digest": "sha256:" + "a" * 64},
        "after": {"present": True, "digest": "sha256:" + "b" * 64},
        "differences": [{"path": "/http/0/timeout", "change": "added", "after": "2s"}],
    }
    (item,) = experiment_view(journal(evidence=[differing]), "j").evidence
    assert item.equal is False
    assert item.differences == ("added /http/0/timeout: 2s",)
    page = render(journal(evidence=[differing]))
    assert "differs" in page and "added /http/0/timeout: 2s" in page


def render(*journals):
    views = tuple(experiment_view(j, f"j{i}.json") for i, j in enumerate(journals))
    return html.render(Inputs((), views), html.Options())


def test_the_page_is_self_contained(tmp_path):
    page = render(journal(), journal(after_met=False, verdict="fail", reasons=["deviated"]))
    assert page.count("<svg") == 4  # a timeline and probe values per experiment
    assert "<script" not in page
    # Nothing loads from elsewhere: no src, no link or url() but to an id of the page itself.
    assert not re.search(r"""(src=|href=["']?https?:|url\((?!#)|@import)""", page)
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert [h for h in hrefs if not h.startswith("#")] == ["data:,"]
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page
    # Two inline SVGs never share an id (a clip path of one would clip the other).
    ids = re.findall(r'id="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_text_from_a_journal_is_escaped_and_a_dollar_is_not_math():
    page = render(journal(title="<script>alert(1)</script> costs $5 and $6"))
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; costs $5 and $6" in page


def test_a_secret_the_environment_resolves_never_reaches_the_page(tmp_path, monkeypatch):
    token = "s3cr3t-token-value-42"
    monkeypatch.setenv("RATINGS_TOKEN", token)
    leaked = journal(
        secrets={"ratings": {"token": {"type": "env", "key": "RATINGS_TOKEN"}}},
        extra_output={"note": f"called with {token}"},
        title=f"title with {token}",
    )
    path = tmp_path / "leaky.journal.json"
    path.write_text(json.dumps(leaked))
    page = html.build([path], html.Options())
    assert token not in page
    assert "***" in page


def test_a_game_days_runs_give_its_trend(tmp_path):
    results = tmp_path / "results"
    slot = lambda day: f"2026-12-{day:02d}T10:30:00+01:00"  # noqa: E731
    gameday_run(results, "bookinfo", "20261201T093000Z", "pass", [journal()], slot=slot(1))
    gameday_run(
        results,
        "bookinfo",
        "20261208T093000Z",
        "fail",
        [journal(), journal(verdict="fail", reasons=["deviated"])],
        slot=slot(8),
        slots=[
            # A second runner for the same slot found it running: both are the history.
            {"slot": slot(8), "outcome": "fail", "runner": "runner-a"},
            {"slot": slot(8), "outcome": "already-running", "runner": "runner-b"},
        ],
    )
    skipped = {"slot": slot(29), "outcome": "skipped", "runner": "runner-a", "reason": "freeze"}
    gameday_run(
        results, "bookinfo", "20261229T093000Z", "skipped", [], slot=slot(29), slots=[skipped]
    )
    gameday_run(
        results,
        "bookinfo",
        "20261222T093000Z",
        "pass",
        [journal()],
        slot=slot(22),
        slots=[
            {"slot": slot(15), "outcome": "missed", "runner": "runner-a", "reason": "no runner"},
            {"slot": slot(22), "outcome": "pass", "runner": "runner-a"},
        ],
    )
    inputs = read_inputs([results])
    (name,) = inputs.by_gameday()
    found = trend(name, inputs.runs)
    assert (found.runs, found.passed) == (3, 2)
    assert found.pass_rate == pytest.approx(2 / 3)
    assert [(p.label, p.outcome, p.pass_share) for p in found.points] == [
        ("20261201T093000Z", "pass", 1.0),
        ("20261208T093000Z", "fail", 0.5),
        ("20261215T093000Z", "missed", None),
        ("20261222T093000Z", "pass", 1.0),
        # A skipped run tested nothing: shown, counted in neither direction.
        ("20261229T093000Z", "skipped", None),
    ]
    assert found.slot_outcomes == {
        "pass": 2,
        "fail": 1,
        "already-running": 1,
        "missed": 1,
        "skipped": 1,
    }
    assert found.recovery_s == (pytest.approx(0.04),) * 3

    page = html.build([results], html.Options())
    assert "2 of 3 runs that ran (67%)" in page
    assert "already-running" in page and "missed" in page and "no runner" in page
    # The latest run in detail (the skipped one: nothing ran); the trend has its own plot.
    assert page.count('<section class="experiment">') == 0
    assert "freeze" in page
    assert page.count("<svg") == 1
    every = html.build([results], html.Options(all_runs=True))
    assert every.count('<section class="experiment">') == 4
    assert every.count("<svg") == 1 + 4 * 2


def test_a_run_directory_takes_each_experiments_verdict_from_the_gate(tmp_path):
    directory = gameday_run(tmp_path, "gd", "adhoc-20261208T093000Z", "fail", [journal()])
    summary = json.loads((directory / "gameday.json").read_text())
    summary["experiments"][0].update(outcome="fail", reasons=["the gate says so"])
    (directory / "gameday.json").write_text(json.dumps(summary))
    (run,) = read_inputs([directory]).runs
    assert run.slot_id == "adhoc-20261208T093000Z" and run.slot is None
    assert run.experiments[0].reasons == ("the gate says so",)


def test_a_game_days_prometheus_serves_experiments_that_name_none(tmp_path):
    directory = gameday_run(tmp_path, "gd", "adhoc-20261208T093000Z", "pass", [journal()])
    summary = json.loads((directory / "gameday.json").read_text())
    summary["prometheus_url"] = "http://prometheus.istio-system:9090"
    (directory / "gameday.json").write_text(json.dumps(summary))
    (run,) = read_inputs([directory]).runs
    assert run.experiments[0].prometheus_url == "http://prometheus.istio-system:9090"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, ["no such file or directory"]),
        ("{not json", ["is not JSON"]),
        ('{"title": "an experiment"}', ["is not a Chaos Toolkit journal", "journal.json"]),
        ("[1, 2]", ["is not a JSON object"]),
    ],
)
def test_input_that_is_not_a_run_is_refused_and_nothing_written(
    tmp_path, monkeypatch, content, words
):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "input.json"
    if content is not None:
        path.write_text(content)
    result = chaosmesh("report", path, "-o", tmp_path / "out.html")
    assert_refused(result, [str(path), *words])
    assert not (tmp_path / "out.html").exists()


def test_a_directory_without_runs_or_journals_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match=r"holds neither gameday\.json"):
        read_inputs([tmp_path / "empty"])
    result = chaosmesh("report", tmp_path / "empty", "-o", tmp_path / "out.html")
    assert_refused(result, ["holds neither gameday.json", "give a journal"])


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--prometheus", "localhost:9090", ["--prometheus", "not an http(s) URL"]),
        ("--rate-window", "30 seconds", ["--rate-window", "not a PromQL duration"]),
        ("--padding-s", "-5", ["--padding-s"]),
    ],
)
def test_bad_options_are_refused_before_anything_is_read(tmp_path, option, value, words):
    path = tmp_path / "j.journal.json"
    path.write_text(json.dumps(journal()))
    result = chaosmesh("report", path, option, value, "-o", tmp_path / "out.html")
    assert_refused(result, words)
    assert not (tmp_path / "out.html").exists()


def test_the_command_writes_the_report_privately(tmp_path):
    path = tmp_path / "j.journal.json"
    path.write_text(json.dumps(journal()))
    out = tmp_path / "report.html"
    result = chaosmesh("report", path, "-o", out)
    assert result.exit_code == 0, result.output
    assert f"report: {out}" in result.output
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert out.stat().st_mode & 0o777 == 0o600


def test_a_prometheus_that_is_down_is_said_once_and_the_report_still_written(tmp_path):
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    paths = []
    for index in range(3):
        path = tmp_path / f"{index}.journal.json"
        path.write_text(json.dumps(journal()))
        paths.append(path)
    started = time.monotonic()
    page = html.build(paths, html.Options(prometheus_url=url))
    assert time.monotonic() - started < 60
    assert page.count(f"Prometheus at {url} could not be reached") == 1
    assert page.count("unreachable (see above)") == 2
    assert page.count("<svg") == 3 * 2  # no metrics plot, the rest all there


def test_an_experiment_the_run_never_reached_is_shown_with_its_reason(tmp_path):
    directory = gameday_run(tmp_path, "gd", "20261208T093000Z", "aborted", [journal()])
    summary = json.loads((directory / "gameday.json").read_text())
    summary["experiments"].append(
        {
            "input": "second.json",
            "title": "the second",
            "outcome": "not-run",
            "reasons": ["abort condition checkout-errors held 60 s"],
        }
    )
    (directory / "gameday.json").write_text(json.dumps(summary))
    (run,) = read_inputs([directory]).runs
    assert run.unrun == (("the second", "not-run", ("abort condition checkout-errors held 60 s",)),)
    page = html.build([directory], html.Options())
    assert "the second" in page and "abort condition checkout-errors held 60 s" in page
