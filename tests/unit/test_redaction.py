"""The redaction rule: every secret hidden, unrelated text intact even when a secret is short."""

import logging

import pytest

from chaosmesh_py.engine import redaction
from chaosmesh_py.engine.redaction import REDACTED, Redactor, secret_values

TOKEN = "s3cr3t-token-0123456789abcdef"
INT_TOKEN = 86753091234567


def test_an_integer_secret_is_hidden_as_a_number_and_as_text():
    hide = Redactor({INT_TOKEN})
    journal = {"secrets": {"k8s": {"KUBERNETES_API_KEY": INT_TOKEN}}, "title": f"uses {INT_TOKEN}"}
    assert hide.deep(journal) == {
        "secrets": {"k8s": {"KUBERNETES_API_KEY": REDACTED}},
        "title": "uses ***",
    }
    assert hide.text(f"Running: ['curl', '-H', 'x-token: {INT_TOKEN}']") == (
        "Running: ['curl', '-H', 'x-token: ***']"
    )


def test_the_experiment_block_yields_numbers_and_environment_values_not_vault_specs():
    block = {
        "k8s": {"KUBERNETES_API_KEY": INT_TOKEN, "host": {"type": "env", "key": "HOST"}},
        "vault": {"db": {"type": "vault", "path": "secret/db", "key": "password"}},
        "flags": {"debug": True, "nothing": None, "list": ["a-long-listed-secret"]},
    }
    assert secret_values(block, {"HOST": "https://api.example:6443"}) == {
        INT_TOKEN,
        "https://api.example:6443",
        "a-long-listed-secret",
    }


@pytest.mark.parametrize("short", ["1", "a", "ab1", 1, 7])
def test_a_short_secret_leaves_unrelated_text_and_numbers_intact(short):
    hide = Redactor({short})
    journal = {
        "experiment": {"title": "route-1 at 10.1.2.3, a canary", "secrets": {"s": {"pin": short}}},
        "run": [
            {"status": "succeeded", "output": {"routes": ["chaosmesh-ab1c-1"], "api_attempts": 3}}
        ],
        "duration": 1.5,
        "tolerance": 1 if isinstance(short, str) else 2,
    }
    hidden = hide.deep(journal)
    assert hidden["experiment"]["secrets"]["s"]["pin"] == REDACTED  # the value itself: hidden
    del hidden["experiment"]["secrets"], journal["experiment"]["secrets"]
    assert hidden == journal  # everything else: untouched
    line = "removed 1 route(s) from bookinfo/ratings-v1 after 1 attempt"
    assert hide.text(line) == line


def test_a_short_secret_standing_quoted_in_a_log_line_is_hidden():
    hide = Redactor({"ab1"})
    assert (
        hide.text("args {'x-pin': 'ab1', 'name': 'ab12'}")
        == "args {'x-pin': '***', 'name': 'ab12'}"
    )
    assert hide.text('{"x-pin": "ab1"}') == '{"x-pin": "***"}'


def test_a_string_secret_never_hides_a_number_but_a_number_secret_hides_its_text():
    assert Redactor({"8080"}).deep({"port": 8080, "url": "8080"}) == {"port": 8080, "url": REDACTED}
    assert Redactor({8080}).deep({"port": 8080, "url": "8080"}) == {
        "port": REDACTED,
        "url": REDACTED,
    }


def test_a_long_secret_is_hidden_inside_strings_and_keys_and_the_longest_wins():
    hide = Redactor({TOKEN, TOKEN[:10]})
    assert hide.text(f"Authorization: Bearer {TOKEN}!") == "Authorization: Bearer ***!"
    assert hide.deep({f"x-{TOKEN}": [f"a{TOKEN}b"]}) == {"x-***": ["a***b"]}


def test_booleans_and_null_are_never_secrets():
    hide = Redactor({True, None, "long-enough-secret"})  # type: ignore[arg-type]
    assert hide.deep({"dry": True, "x": None, "tolerance": False}) == {
        "dry": True,
        "x": None,
        "tolerance": False,
    }


def test_remembered_secrets_reach_a_log_handler_through_the_filter(tmp_path):
    logger = logging.getLogger("chaosmesh-test-redaction")
    logger.propagate = False
    handler = logging.FileHandler(tmp_path / "log")
    logger.addHandler(handler)
    try:
        redaction.install_log_filter(logger)
        assert redaction.remember({"scope": {"token": TOKEN, "pin": "ab1"}}) == ["scope.pin"]
        logger.warning("calling with %s and %r", TOKEN, "ab1")
        try:
            raise RuntimeError(f"refused {TOKEN}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        handler.close()
    written = (tmp_path / "log").read_text()
    assert TOKEN not in written and "'ab1'" not in written
    assert "calling with *** and '***'" in written and "RuntimeError: refused ***" in written
