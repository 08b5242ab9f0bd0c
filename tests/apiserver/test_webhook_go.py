"""The webhook port's stand-ins for Go, against Go's own answers (tests/data/go_reference.json):
regexp.Compile (verdict and message), time.ParseDuration, fmt's %v %f %q and strconv.Atoi."""

import json

import pytest

from chaosmesh_py.localmesh.apiserver.webhook import golang
from chaosmesh_py.localmesh.apiserver.webhook.validation import go_regexp_compile_error
from tests.conftest import ROOT

GO = json.loads((ROOT / "tests/data/go_reference.json").read_text(encoding="utf-8"))


def test_regexes_compile_or_fail_exactly_as_in_go() -> None:
    """Go refuses \\C, which RE2 takes; RE2 runs out of memory where Go does not; both word
    their errors differently, and Go reports the first in the text."""
    answers = {r["in"]: go_regexp_compile_error(r["in"]) or "" for r in GO["regexes"]}
    wrong = {
        r["in"]: (r["err"], answers[r["in"]]) for r in GO["regexes"] if answers[r["in"]] != r["err"]
    }
    assert wrong == {}
    assert len(GO["regexes"]) > 500
    assert sum(1 for r in GO["regexes"] if r["err"]) > 300


@pytest.mark.parametrize("case", GO["durations"], ids=lambda c: repr(c["in"]))
def test_durations_parse_as_in_go(case) -> None:
    assert golang.parse_duration(case["in"]) == case["ns"]


@pytest.mark.parametrize("case", GO["floats"], ids=lambda c: repr(c["in"]))
def test_floats_print_as_in_go(case) -> None:
    assert (golang.float_v(case["in"]), f"{case['in']:f}") == (case["v"], case["f"])


@pytest.mark.parametrize("case", GO["quotes"], ids=lambda c: repr(c["in"]))
def test_strings_quote_as_in_go(case) -> None:
    assert golang.quote(case["in"]) == case["q"]


@pytest.mark.parametrize("case", GO["atoi"], ids=lambda c: repr(c["in"]))
def test_atoi_as_in_go(case) -> None:
    assert golang.atoi(case["in"]) == case["int"]


def test_multierror_text_is_hashicorps() -> None:
    one = golang.multierror_append(None, golang.error("a"))
    two = golang.append_errors(golang.error("a"), golang.error("b"))
    assert str(one) == "1 error occurred:\n\t* a\n\n"
    assert str(two) == "2 errors occurred:\n\t* a\n\t* b\n\n"
    assert golang.append_errors(None, golang.error("a")) == golang.error("a")  # stays plain
    assert golang.entries(golang.multierror_append(two, one)) == ["a", "b", "a"]  # flattened
