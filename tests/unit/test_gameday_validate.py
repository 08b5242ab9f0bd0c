"""``chaosmesh gameday validate FILE --next N``: the summary, then the next runs as the cluster
will make them, across the DST changes a reviewer asks about first."""

import json
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from chaosmesh_py.cli import main
from chaosmesh_py.gameday.schema import schema
from tests.conftest import ROOT

DELAY = str(ROOT / "experiments/bookinfo-ratings-delay.json")
EXAMPLE = ROOT / "tests/data/gameday.yaml"


def gameday_file(tmp_path: Path, cron: str, timezone: str, **more) -> Path:
    path = tmp_path / "gameday.yaml"
    document = {
        "name": "nightly",
        "namespace": "bookinfo",
        "schedule": {"cron": cron, "timezone": timezone},
        "experiments": [{"path": DELAY}],
        **more,
    }
    path.write_text(yaml.safe_dump(document))
    return path


def runs(*arguments: str) -> list[str]:
    result = CliRunner().invoke(main, ["gameday", "validate", *arguments])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("next "))
    return [line.strip() for line in lines[start + 1 :]]


def test_berlin_spring_gap_shows_the_day_without_a_run(tmp_path):
    path = gameday_file(tmp_path, "30 2 * * *", "Europe/Berlin")
    lines = runs(str(path), "--next", "3", "--from", "2026-03-27T12:00")
    assert [line.split("  ")[0] for line in lines] == [
        "Sat 2026-03-28 02:30 CET",
        "Sun 2026-03-29 02:30",
        "Mon 2026-03-30 02:30 CEST",
        "Tue 2026-03-31 02:30 CEST",
    ]
    assert "= 01:30 UTC" in lines[0]
    assert "no run: Europe/Berlin skips this time (clocks go forward)" in lines[1]
    assert "= 00:30 UTC" in lines[2]


def test_new_york_spring_gap_shows_the_day_without_a_run(tmp_path):
    path = gameday_file(tmp_path, "30 2 * * *", "America/New_York")
    lines = runs(str(path), "--next", "2", "--from", "2026-03-07T12:00")
    assert lines[0].startswith("Sun 2026-03-08 02:30")
    assert "no run: America/New_York skips this time" in lines[0]
    assert lines[1].startswith("Mon 2026-03-09 02:30 EDT   = 06:30 UTC")


def test_new_york_autumn_repeat_shows_two_runs(tmp_path):
    path = gameday_file(tmp_path, "30 1 * * *", "America/New_York")
    lines = runs(str(path), "--next", "3", "--from", "2026-10-31T12:00")
    assert lines[0].startswith("Sun 2026-11-01 01:30 EDT   = 05:30 UTC  starts on time")
    assert lines[1].startswith("Sun 2026-11-01 01:30 EST   = 06:30 UTC  starts on time; again")
    assert "Kubernetes starts a second Job" in lines[1]
    assert lines[2].startswith("Mon 2026-11-02 01:30 EST   = 06:30 UTC")


def test_blackouts_and_jitter_in_the_listing():
    lines = runs(str(EXAMPLE), "--next", "6", "--from", "2026-12-01T00:00")
    assert [line[:24] for line in lines] == [
        "Tue 2026-12-01 10:30 CET",
        "Tue 2026-12-08 10:30 CET",
        "Tue 2026-12-15 10:30 CET",
        "Tue 2026-12-22 10:30 CET",
        "Tue 2026-12-29 10:30 CET",
        "Tue 2027-01-05 10:30 CET",
    ]
    assert lines[3].endswith("skipped: release freeze")
    assert lines[4].endswith("skipped: release freeze")
    # a jittered start: within the 5m jitter, and the same on every call (every runner agrees)
    assert "starts 10:3" in lines[1]
    assert "(jitter " in lines[1]
    assert lines == runs(str(EXAMPLE), "--next", "6", "--from", "2026-12-01T00:00")


def test_from_with_an_offset_is_that_instant(tmp_path):
    path = gameday_file(tmp_path, "0 9 * * *", "Europe/Berlin")
    # 07:30 UTC is 08:30 in Berlin: today's 09:00 is still to come
    lines = runs(str(path), "--next", "1", "--from", "2026-12-08T07:30+00:00")
    assert lines[0].startswith("Tue 2026-12-08 09:00 CET")


def test_the_summary_names_what_runs_and_no_url():
    result = CliRunner().invoke(main, ["gameday", "validate", str(EXAMPLE), "--next", "0"])
    assert result.exit_code == 0
    assert result.output.splitlines()[:4] == [
        f"{EXAMPLE}: valid",
        "game day bookinfo-weekly in namespace bookinfo: 2 experiments, 2m of pauses",
        "  01 bookinfo-ratings-delay.json",
        "  02 bookinfo-ratings-abort.json",
    ]
    assert (
        "schedule '30 10 * * TUE' in Europe/Berlin, jitter up to 5m, starting deadline 15m"
        in result.output
    )
    assert (
        "blackout 'maintenance night': fri and 22:00-06:00 (to the next morning)" in result.output
    )
    assert (
        "2 preflight checks, 2 abort conditions, 2 notification targets, Grafana annotations"
        in result.output
    )
    assert "example.com" not in result.output
    assert "runs after" not in result.output


def test_a_game_day_without_a_schedule_runs_by_hand(tmp_path):
    path = tmp_path / "gameday.yaml"
    path.write_text(
        yaml.safe_dump({"name": "adhoc", "namespace": "bookinfo", "experiments": [{"path": DELAY}]})
    )
    result = CliRunner().invoke(main, ["gameday", "validate", str(path)])
    assert result.exit_code == 0
    assert "no schedule: runs by hand only" in result.output


def test_the_same_experiment_twice_is_said_not_refused(tmp_path):
    path = gameday_file(tmp_path, "@daily", "UTC", experiments=[{"path": DELAY}, {"path": DELAY}])
    result = CliRunner().invoke(main, ["gameday", "validate", str(path), "--next", "0"])
    assert result.exit_code == 0
    assert (
        "note: experiments[1] runs bookinfo-ratings-delay.json again (also experiments[0])"
        in result.output
    )


def test_schema_prints_the_published_schema():
    done = subprocess.run(
        [str(Path(sys.executable).parent / "chaosmesh"), "gameday", "schema"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    printed = json.loads(done.stdout)
    assert printed == schema()
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
