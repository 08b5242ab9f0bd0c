"""Hostile journals and game-day summaries to `chaosmesh report`: every field of the shapes the
control and the runner write, given the wrong type, or a number no plot can take. The report
reads them as missing or refuses the file by name (exit 2); it never fails inside (exit 70)."""

import contextlib
import copy
import json
import math

import pytest

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.report import html
from chaosmesh_py.report.model import experiment_view
from chaosmesh_py.report.runs import Inputs, read_inputs
from chaosmesh_py.verdict.rules import MalformedJournal
from tests.badinput.test_cli import assert_refused, chaosmesh
from tests.report_data import gameday_run, journal

WRONG = [None, 5, -1.5, True, "text", [], [1, "x"], {}, {"a": 1}]
JOURNAL = journal(guardrail_checks=2, breach="0.4 is outside [0, 0.1]")


def leaves(node, path=()):
    """The path of every value in a JSON document, containers included."""
    if path:
        yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, (*path, index))


def replaced(document, path, value):
    changed = copy.deepcopy(document)
    node = changed
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return changed


def every_number(node, value):
    """``node`` with every number (not a boolean) replaced by ``value``."""
    if isinstance(node, dict):
        return {k: every_number(v, value) for k, v in node.items()}
    if isinstance(node, list):
        return [every_number(v, value) for v in node]
    if isinstance(node, int | float) and not isinstance(node, bool):
        return value
    return node


@pytest.mark.parametrize("path", list(leaves(JOURNAL)), ids=lambda p: "/".join(map(str, p)))
def test_a_journal_field_of_the_wrong_type_is_read_as_missing_or_refused(path):
    for value in WRONG:
        # MalformedJournal: the gate's rules refuse it; the command says so, exit 2 (below).
        with contextlib.suppress(MalformedJournal):
            experiment_view(replaced(JOURNAL, path, value), "journal.json")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e308])
def test_numbers_no_plot_can_take_are_left_out_not_drawn(value):
    # Every number of the journal at once: effect times, probe values, tolerances, hits.
    view = experiment_view(every_number(JOURNAL, value), "journal.json")
    page = html.render(Inputs((), (view,)), html.Options())
    assert page.count("<svg") == 1  # the timeline; no probe value was left to plot


def test_a_journal_the_gates_rules_refuse_is_named_with_exit_2(tmp_path):
    path = tmp_path / "odd.journal.json"
    path.write_text(json.dumps({**JOURNAL, "chaosmesh": None, "steady_states": 5}))
    result = chaosmesh("report", path, "-o", tmp_path / "out.html")
    assert_refused(result, [str(path), "is not a journal chaosmesh can read"])
    assert not (tmp_path / "out.html").exists()


def test_a_game_day_summary_field_of_the_wrong_type_is_read_as_missing_or_refused(tmp_path):
    directory = gameday_run(
        tmp_path, "gd", "20261208T093000Z", "fail", [JOURNAL], slot="2026-12-08T10:30:00+01:00"
    )
    summary = json.loads((directory / "gameday.json").read_text())
    for path in leaves(summary):
        for value in WRONG:
            (directory / "gameday.json").write_text(json.dumps(replaced(summary, path, value)))
            try:
                read_inputs([directory])
            except InvalidInput as error:
                assert str(directory / "gameday.json") in str(error)
