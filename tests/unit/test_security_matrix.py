"""The policy matrix's pure parts: which outcome a cell expects (later rules win), how Envoy's
answers are told apart, and that a run which tested nothing never passes."""

import pytest

from chaosmesh_py.security import matrix
from chaosmesh_py.security.matrix import Answer, MatrixDiffers, NothingSent
from chaosmesh_py.security.matrix_traffic import classify

ARGUMENTS = {
    "sources": ["productpage-v1", "reviews-v1", "outside"],
    "destinations": ["ratings", "details"],
    "tokens": ["none", "valid", "expired"],
    "expect": {
        "default": "allowed",
        "rules": [
            {"source": "outside", "outcome": "reset"},
            {"destination": "ratings", "outcome": "403"},
            {"destination": "ratings", "source": "reviews-v1", "outcome": "allowed"},
            {"token": "expired", "outcome": "401"},
        ],
    },
}


def expected_of(parsed, source, destination, token):
    (cell,) = [
        c
        for c in parsed.cells()
        if (c.source, c.destination, c.token) == (source, destination, token)
    ]
    return parsed.expectation.of(cell)


def test_the_last_rule_that_applies_wins_and_the_default_fills_the_rest():
    parsed = matrix.parse(ARGUMENTS)
    assert len(parsed.cells()) == 3 * 2 * 1 * 3
    assert expected_of(parsed, "productpage-v1", "details", "none") == "allowed"
    assert expected_of(parsed, "outside", "details", "none") == "reset"
    assert expected_of(parsed, "outside", "ratings", "none") == "403"  # a later rule
    assert expected_of(parsed, "productpage-v1", "ratings", "valid") == "403"
    assert expected_of(parsed, "reviews-v1", "ratings", "valid") == "allowed"
    assert expected_of(parsed, "reviews-v1", "ratings", "expired") == "401"


@pytest.mark.parametrize(
    ("status", "body", "outcome", "reason"),
    [
        (403, b"RBAC: access denied", "403", "RBAC: access denied"),
        (401, b"Jwt is expired", "401", "Jwt is expired"),
        (401, b"Jwt verification fails", "401", "Jwt verification fails"),
        (403, b"Audiences in Jwt are not allowed", "403", "Audiences in Jwt are not allowed"),
        (
            503,
            b"upstream connect error or disconnect/reset before headers. reset reason: "
            b"connection termination",
            "reset",
            "upstream connect error or disconnect/reset before headers. reset reason: "
            "connection termination",
        ),
        (503, b"no healthy upstream", "503", "no healthy upstream"),
        (200, b'{"id": 0}', "allowed", ""),
        (404, b"not found", "allowed", ""),
        (500, b"the app failed", "allowed", ""),
    ],
)
def test_envoys_answers_are_told_apart(status, body, outcome, reason):
    assert classify(status, body) == Answer(outcome, status, reason)


def test_a_401_without_a_body_gives_the_challenge_as_reason():
    answer = classify(401, b"", 'Bearer realm="http://x/", error="invalid_token"')
    assert answer.reason == 'Bearer realm="http://x/", error="invalid_token"'


@pytest.mark.parametrize(
    ("expected", "answer", "meets"),
    [
        ("allowed", Answer("allowed", 404, ""), True),
        ("200", Answer("allowed", 200, ""), True),
        ("200", Answer("allowed", 404, ""), False),
        ("403", Answer("403", 403, "RBAC: access denied"), True),
        ("reset", Answer("reset", 503, "upstream connect error"), True),
        ("503", Answer("reset", 503, "upstream connect error"), True),
        ("allowed", Answer("not-sent", None, "refused"), False),
        ("reset", Answer("not-sent", None, "refused"), False),
    ],
)
def test_an_expected_status_matches_the_status_an_outcome_its_class(expected, answer, meets):
    assert answer.meets(expected) is meets


def test_a_matrix_whose_requests_were_not_sent_never_passes():
    parsed = matrix.parse({**ARGUMENTS, "fail_on_difference": False})
    answers = [(cell, Answer("not-sent", None, "refused")) for cell in parsed.cells()]
    with pytest.raises(NothingSent, match="none of the 18 requests could be sent: refused"):
        matrix.judged(parsed, matrix.compared(parsed, answers, 1.0))


def test_differences_fail_unless_asked_not_to():
    parsed = matrix.parse(ARGUMENTS)
    answers = [(cell, Answer("allowed", 200, "")) for cell in parsed.cells()]
    result = matrix.compared(parsed, answers, 2.0)
    assert (result["cells"], result["cells_per_s"]) == (18, 9.0)
    assert result["outcomes"] == {"allowed": 18}
    assert result["matched"] == 18 - len(result["differs"]) == 6
    with pytest.raises(MatrixDiffers, match=r"^12 of 18 cells differ .*; and 2 more$"):
        matrix.judged(parsed, result)
    lenient = matrix.parse({**ARGUMENTS, "fail_on_difference": False})
    assert matrix.judged(lenient, result) is result
