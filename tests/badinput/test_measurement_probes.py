"""Bad input to the resilience measurement probes: refused before any request, by the probe
itself and by `chaosmesh validate` (exit 2, the field named, no traceback)."""

import pytest
from chaoslib.exceptions import ActivityFailed
from click.testing import CliRunner

from chaosmesh_py.cli import main
from chaosmesh_py.resilience.probes import measure_ejection, measure_overflow, measure_retries
from tests.e2e.test_chaos_run import delay_action, write_experiment

URL = "http://127.0.0.1:9/get"  # the discard port: any request sent would fail, none is

CASES = [
    pytest.param(
        measure_retries,
        {"url": "ftp://x/", "service": "httpbin"},
        "url: must be an http:// URL",
        id="url-scheme",
    ),
    pytest.param(
        measure_retries,
        {"url": URL, "service": "httpbin", "requests": 0},
        "requests: must be a whole number from 1 to 20000, got 0",
        id="requests-0",
    ),
    pytest.param(
        measure_retries,
        {"url": URL, "service": "httpbin", "requests": "10"},
        "requests: must be a whole number",
        id="requests-string",
    ),
    pytest.param(
        measure_retries,
        {"url": URL, "service": "httpbin", "concurrency": 65},
        "concurrency: must be a whole number from 1 to 64",
        id="concurrency-65",
    ),
    pytest.param(
        measure_retries,
        {"url": URL, "service": "httpbin", "timeout_s": 0},
        "timeout_s: must be a number of seconds above 0",
        id="timeout-0",
    ),
    pytest.param(
        measure_retries,
        {"url": URL, "service": "httpbin", "timeout_s": 600},
        "timeout_s: must be at most 60 s",
        id="timeout-600",
    ),
    pytest.param(
        measure_retries,
        {"url": URL, "service": "httpbin", "headers": {"end-user": 7}},
        "headers: must map header names to strings",
        id="header-number",
    ),
    pytest.param(
        measure_retries,
        {"url": URL, "service": "httpbin", "expect": {"attempts_per_request": "4"}},
        "expect.attempts_per_request: must be a number or [low, high]",
        id="expect-string",
    ),
    pytest.param(
        measure_retries,
        {"url": URL, "service": "httpbin", "expect": {"error_ratio": [0.1, 0]}},
        "expect.error_ratio: must be a number or [low, high] with low <= high",
        id="expect-reversed",
    ),
    pytest.param(
        measure_retries,
        {"url": URL, "service": ""},
        "service: must be a non-empty string",
        id="service-empty",
    ),
    pytest.param(
        measure_overflow,
        {"url": URL, "service": "httpbin", "waves": 0},
        "waves: must be a whole number from 1",
        id="waves-0",
    ),
    pytest.param(
        measure_overflow,
        {"url": URL, "service": "httpbin", "concurrency": 64, "waves": 1000},
        "waves: waves x concurrency must be at most 20000",
        id="waves-too-many",
    ),
    pytest.param(
        measure_ejection,
        {"url": URL, "service": "httpbin", "pace_s": -1},
        "pace_s: must be a number of seconds above 0",
        id="pace-negative",
    ),
]


@pytest.mark.parametrize(("probe", "arguments", "expected"), CASES)
def test_the_probe_refuses_before_any_request(probe, arguments, expected):
    with pytest.raises(ActivityFailed, match="InvalidInput: " + _escaped(expected)):
        probe(**arguments)


@pytest.mark.parametrize(("probe", "arguments", "expected"), CASES)
def test_validate_exits_2_naming_the_field(tmp_path, probe, arguments, expected):
    measurement = {
        "type": "probe",
        "name": "measured",
        "provider": {
            "type": "python",
            "module": "chaosmesh_py.resilience.probes",
            "func": probe.__name__,
            "arguments": arguments,
        },
    }
    path = write_experiment(tmp_path, [delay_action(), measurement])
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def _escaped(text):
    import re

    return re.escape(text)
