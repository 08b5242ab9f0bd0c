"""Bad game-day files through ``chaosmesh gameday validate``.

Each case starts from a valid game day and breaks one thing, so the error can only come from
that change. Every one must exit 2 with a line naming the field as the file spells it, say what
to write instead, and show no traceback; nothing is written.
"""

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from chaosmesh_py.cli import main
from tests.conftest import ROOT

DELAY = str(ROOT / "experiments/bookinfo-ratings-delay.json")
ABORT = str(ROOT / "experiments/bookinfo-ratings-abort.json")

VALID: dict[str, Any] = {
    "name": "checkout-weekly",
    "namespace": "bookinfo",
    "schedule": {"cron": "30 10 * * TUE", "timezone": "Europe/Berlin", "jitter": "5m"},
    "blackouts": [
        {"reason": "release freeze", "dates": {"from": "2026-12-18", "to": "2027-01-04"}},
        {"reason": "nights", "hours": {"from": "22:00", "to": "06:00"}},
    ],
    "prometheus": {"url": "http://127.0.0.1:9090"},
    "preflight": [{"name": "no alerts", "query": 'ALERTS{alertstate="firing"}'}],
    "abort": [{"name": "errors", "query": "vector(0)", "above": 0.05, "for": "1m"}],
    "experiments": [{"path": DELAY, "pauseAfter": "30s"}, {"path": ABORT}],
    "notifications": [{"type": "slack", "url": "${SLACK_WEBHOOK_URL}"}],
    "grafana": {"url": "https://grafana.example.com", "tokenEnv": "GRAFANA_TOKEN"},
}


def broken(edit) -> dict[str, Any]:
    document = copy.deepcopy(VALID)
    edit(document)
    return document


def setting(*path_and_value):
    *path, key, value = path_and_value

    def edit(document):
        node = document
        for step in path:
            node = node[step]
        if value is DELETE:
            del node[key]
        else:
            node[key] = value

    return edit


DELETE = object()

# (case id, the edit, the field the error must name, words the message must hold)
CASES = [
    # unknown or broken experiments
    (
        "missing-experiment",
        setting("experiments", 1, "path", "no-such.json"),
        "experiments[1].path",
        "no such file",
    ),
    (
        "invalid-experiment",
        setting("experiments", 0, "path", str(ROOT / "tests/data/gameday.yaml")),
        "experiments[0].path",
        "gameday.yaml",
    ),
    ("no-experiments", setting("experiments", []), "experiments", "must not be empty"),
    ("experiments-missing", setting("experiments", DELETE), "experiments", "is required"),
    (
        "experiment-not-a-mapping",
        setting("experiments", 0, DELAY),
        "experiments[0]",
        "must be a mapping",
    ),
    # bad cron, as Kubernetes would refuse it
    (
        "cron-out-of-range",
        setting("schedule", "cron", "61 10 * * *"),
        "schedule.cron",
        "above maximum (59)",
    ),
    (
        "cron-four-fields",
        setting("schedule", "cron", "30 10 * *"),
        "schedule.cron",
        "exactly 5 fields",
    ),
    ("cron-bad-name", setting("schedule", "cron", "30 10 * * TUESDAY"), "schedule.cron", "TUESDAY"),
    ("cron-every", setting("schedule", "cron", "@every 1h"), "schedule.cron", "@every"),
    (
        "cron-with-tz",
        setting("schedule", "cron", "TZ=UTC 30 10 * * *"),
        "schedule.cron",
        "timeZone field",
    ),
    ("cron-never-fires", setting("schedule", "cron", "0 0 30 2 *"), "schedule.cron", "never fires"),
    ("cron-not-a-string", setting("schedule", "cron", 5), "schedule.cron", "must be a string"),
    # bad timezone
    (
        "timezone-unknown",
        setting("schedule", "timezone", "Europe/Berln"),
        "schedule.timezone",
        "unknown time zone",
    ),
    (
        "timezone-local",
        setting("schedule", "timezone", "Local"),
        "schedule.timezone",
        "explicit time zone",
    ),
    (
        "timezone-missing",
        setting("schedule", "timezone", DELETE),
        "schedule.timezone",
        "is required",
    ),
    (
        "timezone-path",
        setting("schedule", "timezone", "../../etc/passwd"),
        "schedule.timezone",
        "unknown time zone",
    ),
    # blackout nonsense
    (
        "blackout-reversed-dates",
        setting("blackouts", 0, "dates", {"from": "2027-01-04", "to": "2026-12-18"}),
        "blackouts[0].dates",
        "reversed",
    ),
    (
        "blackout-empty-hours",
        setting("blackouts", 1, "hours", {"from": "09:00", "to": "09:00"}),
        "blackouts[1].hours",
        "is empty",
    ),
    (
        "blackout-no-condition",
        setting("blackouts", 1, {"reason": "always"}),
        "blackouts[1]",
        "needs at least one of",
    ),
    (
        "blackout-no-reason",
        setting("blackouts", 0, "reason", DELETE),
        "blackouts[0].reason",
        "is required",
    ),
    (
        "blackout-bad-hour",
        setting("blackouts", 1, "hours", "from", "25:00"),
        "blackouts[1].hours.from",
        "HH:MM",
    ),
    (
        "blackout-bad-date",
        setting("blackouts", 0, "dates", "to", "2026-02-30"),
        "blackouts[0].dates.to",
        "not a date",
    ),
    (
        "blackout-bad-weekday",
        setting("blackouts", 1, "weekdays", ["monday"]),
        "blackouts[1].weekdays[0]",
        "mon, tue",
    ),
    (
        "blackout-no-weekdays",
        setting("blackouts", 1, "weekdays", []),
        "blackouts[1].weekdays",
        "must not be empty",
    ),
    (
        "blackout-weekday-twice",
        setting("blackouts", 1, "weekdays", ["sat", "sat"]),
        "blackouts[1].weekdays",
        "twice",
    ),
    (
        "blackout-hidden-by-an-earlier-one",
        setting(
            "blackouts",
            1,
            {"reason": "christmas", "dates": {"from": "2026-12-24", "to": "2026-12-26"}},
        ),
        "blackouts[1]",
        "already covered by blackouts[0] ('release freeze')",
    ),
    (
        "blackout-inside-a-night",
        setting(
            "blackouts",
            [VALID["blackouts"][1], {"reason": "late", "hours": {"from": "23:00", "to": "01:00"}}],
        ),
        "blackouts[1]",
        "never the reason given",
    ),
    (
        "blackout-a-weekend-inside-weekends",
        setting(
            "blackouts",
            [
                {"reason": "weekends", "weekdays": ["sat", "sun"]},
                {"reason": "offsite", "dates": {"from": "2026-12-12", "to": "2026-12-13"}},
            ],
        ),
        "blackouts[1]",
        "already covered by blackouts[0] ('weekends')",
    ),
    (
        "blackout-dates-and-weekdays-disjoint",
        setting(
            "blackouts",
            0,
            {
                "reason": "x",
                "weekdays": ["sat"],
                "dates": {"from": "2026-12-22", "to": "2026-12-22"},
            },
        ),
        "blackouts[0]",
        "covers no day",
    ),
    (
        "blackouts-skip-every-slot",
        setting("blackouts", 1, {"reason": "tuesday standup", "weekdays": ["tue"]}),
        "blackouts",
        "skip every slot of the coming year",
    ),
    # unknown keys, named with a guess
    ("unknown-top-level-key", setting("schedul", {}), "schedul", "did you mean schedule?"),
    (
        "unknown-schedule-key",
        setting("schedule", "timeZone", "UTC"),
        "schedule.timeZone",
        "did you mean timezone?",
    ),
    (
        "unknown-blackout-key",
        setting("blackouts", 1, "hour", "22:00"),
        "blackouts[1].hour",
        "did you mean hours?",
    ),
    (
        "unknown-notification-key",
        setting("notifications", 0, "verify_tls", False),
        "notifications[0].verify_tls",
        "did you mean verifyTls?",
    ),
    (
        "unknown-experiment-key",
        setting("experiments", 0, "pause", "1m"),
        "experiments[0].pause",
        "pauseAfter",
    ),
    ("blackouts-without-schedule", setting("schedule", DELETE), "blackouts", "has no schedule"),
    # what YAML can hold and JSON cannot
    ("key-not-a-string", setting("schedule", 5, "x"), "schedule.5", "the key 5 is not a string"),
    (
        "key-null",
        setting("blackouts", 0, None, "x"),
        "blackouts[0].null",
        "the key null is not a string",
    ),
    (
        "all-week-minutely",
        lambda document: (
            setting("schedule", "cron", "* * * * *")(document),
            _every_day_blacked_out(document),
        ),
        "blackouts",
        "skip every slot of the coming year (",
    ),
    # bad durations
    (
        "pause-too-long",
        setting("experiments", 0, "pauseAfter", "9000h"),
        "experiments[0].pauseAfter",
        "longer than a year",
    ),
    (
        "jitter-words",
        setting("schedule", "jitter", "5 minutes"),
        "schedule.jitter",
        "30s, 10m or 1h30m",
    ),
    (
        "jitter-bare-number",
        setting("schedule", "jitter", 300),
        "schedule.jitter",
        "must be a string",
    ),
    (
        "pause-days",
        setting("experiments", 0, "pauseAfter", "1d"),
        "experiments[0].pauseAfter",
        "1h30m",
    ),
    ("abort-for-minutes-first", setting("abort", 0, "for", "30s1m"), "abort[0].for", "1h30m"),
    (
        "jitter-past-deadline",
        setting("schedule", "jitter", "15m"),
        "schedule.jitter",
        "starting deadline",
    ),
    (
        "deadline-too-short",
        setting("schedule", "startingDeadline", "5s"),
        "schedule.startingDeadline",
        "10 s",
    ),
    (
        "abort-interval-zero",
        setting("abort", 0, "interval", "0s"),
        "abort[0].interval",
        "shorter than 1s",
    ),
    (
        "timeout-zero",
        setting("notifications", 0, "timeout", "0s"),
        "notifications[0].timeout",
        "(0s, 60s]",
    ),
    # bad names
    ("name-upper-case", setting("name", "Checkout_Weekly"), "name", "lower-case letters"),
    ("name-too-long", setting("name", "c" * 53), "name", "at most 52"),
    ("name-missing", setting("name", DELETE), "name", "is required"),
    ("namespace-bad", setting("namespace", "Book Info"), "namespace", "not a namespace name"),
    # checks and notifications
    (
        "abort-above-and-below",
        setting("abort", 0, "below", 0.0),
        "abort[0]",
        "exactly one of above or below",
    ),
    (
        "abort-no-threshold",
        setting("abort", 0, "above", DELETE),
        "abort[0]",
        "exactly one of above or below",
    ),
    ("no-prometheus", setting("prometheus", DELETE), "preflight[0].prometheus", "no Prometheus"),
    (
        "duplicate-preflight-names",
        setting("preflight", [VALID["preflight"][0], VALID["preflight"][0]]),
        "preflight[1].name",
        "also the name of preflight[0]",
    ),
    (
        "notification-bad-type",
        setting("notifications", 0, "type", "email"),
        "notifications[0].type",
        "http or slack",
    ),
    (
        "notification-bad-url",
        setting("notifications", 0, "url", "ftp://x"),
        "notifications[0].url",
        "${ENV_NAME}",
    ),
    (
        "notification-bad-reference",
        setting("notifications", 0, "url", "https://x/${SLACK-URL}"),
        "notifications[0].url",
        "does not name an environment variable",
    ),
    (
        "notification-unclosed-reference",
        setting("notifications", 0, "headers", {"Authorization": "Bearer ${TOKEN"}),
        "notifications[0].headers.Authorization",
        "never closed",
    ),
    (
        "grafana-token-env",
        setting("grafana", "tokenEnv", "glsa-abc.def"),
        "grafana.tokenEnv",
        "never the token",
    ),
    ("grafana-no-url", setting("grafana", "url", DELETE), "grafana.url", "is required"),
]


def _every_day_blacked_out(document):
    document["blackouts"] = [
        {"reason": "all week", "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
    ]


def validate(*arguments: str):
    return CliRunner().invoke(main, ["gameday", "validate", *arguments])


@pytest.mark.parametrize(
    ("edit", "field", "said"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_a_bad_game_day_names_the_field(tmp_path, edit, field, said):
    path = tmp_path / "gameday.yaml"
    path.write_text(yaml.safe_dump(broken(edit)))
    result = validate(str(path), "--from", "2026-12-06T12:00")
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"{path}: invalid: {field}: "), lines[0]
    assert said in lines[0]
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gameday.yaml"]  # nothing written


def test_the_cases_are_distinct():
    assert len({case[0] for case in CASES}) == len(CASES) >= 50


def test_the_valid_base_is_valid(tmp_path):
    path = tmp_path / "gameday.yaml"
    path.write_text(yaml.safe_dump(VALID))
    result = validate(str(path), "--from", "2026-12-06T12:00")
    assert result.exit_code == 0, result.output


def test_several_problems_say_how_many_more(tmp_path):
    path = tmp_path / "gameday.yaml"
    document = broken(setting("schedul", {}))
    document["blackouts"][0]["reason"] = ""
    path.write_text(yaml.safe_dump(document))
    result = validate(str(path))
    assert result.exit_code == 2
    assert "(and 1 more problem)" in result.output


@pytest.mark.parametrize(
    ("content", "name", "said"),
    [
        ("", "gameday.yaml", "gameday: the file is empty"),
        ("- a\n- b\n", "gameday.yaml", "gameday: must be a mapping, got list"),
        ("name: [unclosed\n", "gameday.yaml", "gameday: YAML syntax error at line 2"),
        ('{"name": }', "gameday.json", "gameday: JSON syntax error at line 1"),
        ("name: x\n", "gameday.txt", "neither JSON nor YAML"),
        ("name: x\n", "gameday.yaml", "gameday: namespace: is required"),
    ],
)
def test_a_file_that_is_no_game_day_is_named(tmp_path, content, name, said):
    path = tmp_path / name
    path.write_text(content)
    result = validate(str(path))
    assert result.exit_code == 2
    assert said.split("gameday: ")[-1] in result.output
    assert "Traceback" not in result.output


def test_a_key_written_twice_is_refused(tmp_path):
    path = tmp_path / "gameday.yaml"
    path.write_text(yaml.safe_dump(VALID) + "name: other-name\n")
    result = validate(str(path))
    assert result.exit_code == 2
    assert "found the key 'name' twice in one mapping" in result.output


def test_json_infinity_is_not_a_threshold(tmp_path):
    path = tmp_path / "gameday.json"
    path.write_text(json.dumps(VALID).replace('"above": 0.05', '"above": Infinity'))
    result = validate(str(path))
    assert result.exit_code == 2
    assert "abort[0].above: inf is not a finite number" in result.output


def test_a_missing_file_is_named(tmp_path):
    result = validate(str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "gameday: no such file" in result.output


def test_a_bad_from_is_named(tmp_path):
    path = tmp_path / "gameday.yaml"
    path.write_text(yaml.safe_dump(VALID))
    result = validate(str(path), "--from", "next tuesday")
    assert result.exit_code == 2
    assert "--from: 'next tuesday' is not an ISO-8601 time" in result.output


def test_the_installed_command_shows_no_traceback(tmp_path):
    path = tmp_path / "gameday.json"
    path.write_text(json.dumps(broken(setting("schedule", "cron", "61 * * * *"))))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "chaosmesh"), "gameday", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"{path}: invalid: schedule.cron: minute field '61'")
    assert "Traceback" not in done.stderr


def test_a_bad_url_is_named_never_echoed(tmp_path):
    document = broken(setting("notifications", 0, "url", "hooks.slack.com/services/T0/B0/sEcReT"))
    document["notifications"].append(
        {
            "type": "http",
            "url": "https://x.example",
            "headers": {"Authorization": ["Bearer", "sEcReT"]},
        }
    )
    path = tmp_path / "gameday.yaml"
    path.write_text(yaml.safe_dump(document))
    result = validate(str(path))
    assert result.exit_code == 2
    assert "notifications[0].url: is not in the expected form" in result.output
    assert "(and 1 more problem)" in result.output
    assert "sEcReT" not in result.output


def test_a_secret_written_out_is_pointed_at_not_printed(tmp_path):
    document = broken(
        setting("notifications", 0, "url", "https://hooks.slack.com/services/T0/B0/sEcReT")
    )
    path = tmp_path / "gameday.yaml"
    path.write_text(yaml.safe_dump(document))
    result = validate(str(path), "--next", "0")
    assert result.exit_code == 0
    assert "note: notifications[0].url looks like it holds a credential" in result.output
    assert "sEcReT" not in result.output
