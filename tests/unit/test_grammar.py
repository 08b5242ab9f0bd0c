"""The strings the project writes into Istio objects, checked as Istio and Envoy check them."""

import json

import pytest

from chaosmesh_py.istio import grammar
from tests.conftest import ROOT

GO = json.loads((ROOT / "tests/data/go_reference.json").read_text(encoding="utf-8"))


def test_every_regex_istios_go_refuses_is_refused() -> None:
    """Never less strict than Istio: Go's verdicts on every kind of pattern where RE2 and Go part,
    and the others; a pattern Go takes is refused only for what Envoy's RE2 refuses."""
    refused_by_go = [r["in"] for r in GO["regexes"] if r["err"]]
    assert [p for p in refused_by_go if grammar.regex_problem(p) is None] == []
    for pattern in (r["in"] for r in GO["regexes"] if not r["err"] and r["in"]):  # "": Istio
        problem = grammar.regex_problem(pattern)
        assert problem is None or "RE2" in problem.what, (pattern, problem)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(?=jason)jason", "RE2 accepts: invalid perl operator: (?="),
        ("(?<!x)y", "invalid perl operator: (?<"),
        (r"(a)\1", r"invalid escape sequence: \1"),
        (r"\Z", r"invalid escape sequence: \Z"),
        ("a**", "bad repetition operator: **"),
        (r"ja\Cson", "Istio's Go regexp refuses"),
        ("a" * 1025, "1025 bytes, over Istio's limit of 1024"),
        ("é" * 513, "1026 bytes"),
        (r"\pL{200}", "RE2 program size of 239204, over the 32768 Istio lets Envoy load"),
        ("", "is empty"),
        ("\ud800", "not valid Unicode"),
    ],
)
def test_a_regex_is_refused_with_the_reason(pattern: str, reason: str) -> None:
    problem = grammar.regex_problem(pattern)
    assert problem is not None
    assert reason in problem.what


@pytest.mark.parametrize(
    "pattern",
    ["ja.*", r"(?i)^ja\w+$", r"\pL+", "(?P<user>[a-z]+)", "(?<user>[a-z]+)", r"\Q\C\E", r"\\C"],
)
def test_re2_syntax_is_accepted(pattern: str) -> None:
    """Including \\pL+ (program size 1201: over Envoy's default 100, within Istio's 32768)."""
    assert grammar.regex_problem(pattern) is None


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("end-user", True),
        ("X-Request-Id", True),
        ("funky!$#_", True),
        (":authority", True),
        (":path", True),
        ("@request.auth.claims.sub", True),
        ("@Request.Auth.Claims[groups]", True),
        ("", False),
        ("x,y", False),  # a token has no comma, though Istio's character class takes it
        ("x y", False),
        ("x/y", False),
        (":foo", False),
        ("::", False),
        ("end-user\x01", False),
        ("end-user\t", False),
        ("ü", False),
        ("@request.auth.claims", False),
        ("@request.auth.claims[]", False),
    ],
)
def test_header_names_are_http_tokens_or_istios_exceptions(name: str, valid: bool) -> None:
    assert (grammar.header_name_problem(name) is None) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [("jason", True), ("a\tb", True), ("", True), ("é", True), ("a\nb", False), ("\x7f", False)],
)
def test_header_values_have_no_control_characters_but_tab(value: str, valid: bool) -> None:
    assert (grammar.header_value_problem(value) is None) is valid


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("app", True),
        ("app.kubernetes.io/name", True),
        ("a_b.c-d", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("p" * 254 + "/app", False),
        ("bad key", False),
        ("-app", False),
        ("/app", False),
        ("example.com/", False),
    ],
)
def test_label_keys(key: str, valid: bool) -> None:
    assert (grammar.label_key_problem(key) is None) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [("", True), ("v1", True), ("a" * 63, True), ("a" * 64, False), ("bad value!", False)],
)
def test_label_values_are_at_most_63_characters(value: str, valid: bool) -> None:
    """Istio does not bound the length; no pod can carry a longer value, so nothing matches."""
    assert (grammar.label_value_problem(value) is None) is valid


@pytest.mark.parametrize(
    ("host", "valid"),
    [
        ("reviews", True),
        ("reviews.bookinfo.svc.cluster.local.", True),
        ("*.bar.com", True),
        ("*-foo.bar", True),
        ("Reviews.Default", True),
        ("*", False),
        ("", False),
        ("x" * 256, False),
        ("1.1.1.1", False),
        ("foo.*.com", False),
        ("my_svc.default", False),
        ("a" * 64 + ".com", False),
    ],
)
def test_destination_hosts(host: str, valid: bool) -> None:
    assert (grammar.host_problem(host) is None) is valid
