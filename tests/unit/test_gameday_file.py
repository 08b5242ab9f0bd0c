"""Reading a game-day file: the example in tests/data as a team would write it, durations, and
the YAML forms a user types without quoting (times, dates)."""

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.gameday.schema import schema
from chaosmesh_py.gameday.suite import load, parse_duration
from tests.conftest import ROOT

EXAMPLE = ROOT / "tests/data/gameday.yaml"
DELAY = ROOT / "experiments/bookinfo-ratings-delay.json"


def write(tmp_path: Path, document: dict, name: str = "gameday.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document) if name.endswith(".yaml") else json.dumps(document))
    return path


def minimal(**more) -> dict:
    return {
        "name": "checkout",
        "namespace": "bookinfo",
        "experiments": [{"path": str(DELAY)}],
        **more,
    }


def test_the_example_reads_into_the_model():
    gameday = load(EXAMPLE)
    assert (gameday.name, gameday.namespace) == ("bookinfo-weekly", "bookinfo")
    assert [step.path for step in gameday.experiments] == [
        DELAY,
        ROOT / "experiments/bookinfo-ratings-abort.json",
    ]
    assert [step.pause_after_s for step in gameday.experiments] == [120.0, 0.0]
    assert gameday.schedule is not None
    assert (gameday.schedule.cron, gameday.schedule.timezone) == ("30 10 * * TUE", "Europe/Berlin")
    assert (gameday.schedule.jitter_s, gameday.schedule.starting_deadline_s) == (300.0, 900.0)
    assert [b.reason for b in gameday.blackouts] == [
        "public holiday",
        "release freeze",
        "maintenance night",
    ]
    night = gameday.blackouts[2]
    assert night.weekdays == frozenset({4})
    assert [f"{t:%H:%M}" for t in night.hours or ()] == ["22:00", "06:00"]
    assert gameday.prometheus_url == "http://prometheus.istio-system:9090"
    assert [check.below for check in gameday.preflight] == [None, 0.01]
    errors, reviews = gameday.abort
    assert (errors.above, errors.below, errors.for_s, errors.interval_s) == (0.05, None, 60.0, 10.0)
    assert (reviews.above, reviews.below, reviews.for_s, reviews.interval_s) == (
        None,
        0.5,
        30.0,
        5.0,
    )
    assert [check.prometheus_url for check in (*gameday.preflight, *gameday.abort)] == [
        None,
        "http://thanos-query.monitoring:9090",
        None,
        "http://thanos-query.monitoring:9090",
    ]
    slack, http = gameday.notifications
    assert (slack.kind, slack.url) == ("slack", "${SLACK_WEBHOOK_URL}")  # never resolved here
    assert http.headers == (("Authorization", "Bearer ${CHAOS_EVENTS_TOKEN}"),)
    assert (http.events, http.timeout_s) == (frozenset(), 3.0)
    assert gameday.grafana is not None
    assert (gameday.grafana.token_env, gameday.grafana.panel_id) == ("GRAFANA_TOKEN", 4)
    assert gameday.grafana.timeout_s == 3.0


def test_the_example_is_valid_against_the_published_schema():
    Draft202012Validator.check_schema(schema())
    document = yaml.safe_load(EXAMPLE.read_text())
    assert list(Draft202012Validator(schema()).iter_errors(document)) == []


def test_json_reads_as_yaml_does(tmp_path):
    gameday = load(
        write(tmp_path, minimal(schedule={"cron": "@daily", "timezone": "UTC"}), "g.json")
    )
    assert gameday.schedule is not None
    assert gameday.schedule.starting_deadline_s == 600.0  # the default
    assert gameday.blackouts == ()


def test_unquoted_times_and_dates_are_read_as_written(tmp_path):
    # YAML 1.1 reads 22:00 as the integer 1320 and 2026-12-18 as a date; the file means text.
    path = tmp_path / "g.yaml"
    path.write_text(
        f"name: checkout\nnamespace: bookinfo\nexperiments: [{{path: {DELAY}}}]\n"
        "schedule: {cron: '0 10 * * *', timezone: UTC}\n"
        "blackouts:\n"
        "  - {reason: night, hours: {from: 22:00, to: 06:00}}\n"
        "  - {reason: freeze, dates: {from: 2026-12-18, to: 2027-01-04}}\n"
    )
    night, freeze = load(path).blackouts
    assert [f"{t:%H:%M}" for t in night.hours or ()] == ["22:00", "06:00"]
    assert [d.isoformat() for d in freeze.dates or ()] == ["2026-12-18", "2027-01-04"]


def test_experiment_paths_are_relative_to_the_file(tmp_path):
    folder = tmp_path / "gamedays"
    folder.mkdir()
    (folder / "delay.json").write_text(DELAY.read_text())
    gameday = load(write(folder, minimal(experiments=[{"path": "delay.json"}])))
    assert gameday.experiments[0].path == folder / "delay.json"


def test_the_same_experiment_twice_is_two_steps(tmp_path):
    gameday = load(write(tmp_path, minimal(experiments=[{"path": str(DELAY)}] * 2)))
    assert len(gameday.experiments) == 2


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("10m", 600),
        ("1h30m", 5400),
        ("2h", 7200),
        ("1h0m5s", 3605),
        ("1.5s", 1.5),
        ("0s", 0),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text, "abort[0].for") == seconds


@pytest.mark.parametrize(
    "text", ["", "30", "10 m", "1m30", "30m1h", "1.5m", "-5s", "5S", "1d", "s", "PT5M"]
)
def test_bad_durations_name_the_field(text):
    with pytest.raises(InvalidInput) as caught:
        parse_duration(text, "abort[0].for")
    assert caught.value.field == "abort[0].for"
    assert "30s, 10m or 1h30m" in caught.value.fix


def test_the_documented_example_is_the_tested_one():
    docs = (ROOT / "docs/gameday.md").read_text()
    example = docs.split("A full example", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(example) == yaml.safe_load(EXAMPLE.read_text())


def _keys_the_schema_knows(node: dict, prefix: str = "") -> set[str]:
    while "$ref" in node:
        node = schema()["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    keys = set()
    for key, child in node.get("properties", {}).items():
        path = f"{prefix}.{key}" if prefix else key
        keys |= {path, *_keys_the_schema_knows(child, path)}
    if "items" in node:
        keys |= _keys_the_schema_knows(node["items"], prefix + "[]")
    return keys


def _keys_written(document: object, prefix: str = "") -> set[str]:
    if isinstance(document, dict):
        keys = set()
        for key, child in document.items():
            path = f"{prefix}.{key}" if prefix else key
            keys |= {path, *_keys_written(child, path)}
        return keys
    if isinstance(document, list):
        return set().union(*(_keys_written(child, prefix + "[]") for child in document))
    return set()


def test_the_example_shows_every_key_the_schema_knows():
    known = _keys_the_schema_knows(schema())
    assert len(known) > 40
    assert known - _keys_written(yaml.safe_load(EXAMPLE.read_text())) == set()
