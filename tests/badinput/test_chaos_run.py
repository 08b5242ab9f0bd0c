"""The corpus, third layer: `chaos run` with a bad value in a later activity.

The control checks every chaosmesh activity's arguments before the experiment starts, so the
first action, which is correct, never runs: nothing reaches the API server, and the journal
says why.
"""

import json

import pytest

from tests.badinput.test_actions import snapshot
from tests.e2e.test_chaos_run import CONTROL, chaos, delay_action, write_experiment
from tests.integration.test_inject_rollback import writes

pytestmark = pytest.mark.slow


def _later(**arguments):
    action = delay_action()
    action["name"] = "second-delay"
    action["provider"]["arguments"].update(arguments)
    return action


@pytest.mark.parametrize(
    ("second", "configuration", "expected"),
    [
        pytest.param(
            _later(fixed_delay="7 seconds"),
            {},
            "second-delay: fixed_delay: '7 seconds' is not a duration",
            id="bad-duration-in-second-action",
        ),
        pytest.param(
            _later(namespace="kube-system"),
            {},
            "second-delay: namespace: 'kube-system' is protected",
            id="protected-namespace-in-second-action",
        ),
        pytest.param(
            _later(headers={"end-user": {"regex": "(jason"}}),
            {},
            "second-delay: headers.end-user.regex: '(jason' is not a regular expression",
            id="bad-regex-in-second-action",
        ),
        pytest.param(
            _later(headers={"end-user": {"regex": "(?=jason)jason"}}),
            {},
            "second-delay: headers.end-user.regex: '(?=jason)jason' is not a regular expression "
            "RE2 accepts: invalid perl operator: (?=",
            id="look-ahead-regex-in-second-action",
        ),
        pytest.param(
            _later(headers={"end-user\x01": "jason"}),
            {},
            "second-delay: headers: header name 'end-user\\x01' is not an HTTP header name",
            id="control-character-in-a-header-name-in-second-action",
        ),
        pytest.param(
            _later(),
            {"chaosmesh_ttl_s": "1h"},
            "chaosmesh_ttl_s: must be a whole number of seconds from 1 to 2592000 (30 days), "
            "got '1h'",
            id="bad-ttl-in-configuration",
        ),
    ],
)
def test_a_bad_later_value_stops_the_run_before_anything_is_injected(
    api, tmp_path, second, configuration, expected
):
    path = write_experiment(tmp_path, [delay_action(), second], controls=(CONTROL,))
    experiment = json.loads(path.read_text())
    experiment["configuration"].update(configuration)
    path.write_text(json.dumps(experiment))
    before = snapshot(api)
    api.request_log.clear()
    journal_path = tmp_path / "journal.json"
    done = chaos(api, tmp_path, "run", "--journal-path", str(journal_path), str(path))
    assert done.returncode == 1, done.stderr
    assert expected in done.stderr
    assert "nothing was injected" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    journal = json.loads(journal_path.read_text())
    assert journal["status"] == "interrupted"
    assert journal["run"] == []
    assert writes(api) == []
    assert snapshot(api) == before
