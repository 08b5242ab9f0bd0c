"""`chaosmesh gameday render` as a user types it: files written on success; on any input it
cannot use, exit 2 with the field and the fix, no traceback, nothing written."""

import pytest
import yaml
from click.testing import CliRunner

from chaosmesh_py.cli import main
from chaosmesh_py.gameday import suite
from tests.gameday_render_fixtures import by_name, experiment, write_gameday

pytestmark = pytest.mark.skipif(
    not hasattr(suite, "load"), reason="suite.load is not there yet (gd-suite)"
)


def render(*arguments):
    result = CliRunner().invoke(main, ["gameday", "render", *map(str, arguments)])
    assert "Traceback" not in result.output
    return result


def test_render_writes_the_manifests_and_says_how_to_apply_them(tmp_path):
    gameday = write_gameday(tmp_path, {"a": by_name()})
    out = tmp_path / "out"
    done = render(gameday.source, "-o", out, "--image", "registry.example.com/cm:1")
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in out.iterdir()) == [
        "cronjob.yaml",
        "files.yaml",
        "rbac.yaml",
        "results.yaml",
    ]
    assert f"apply with: kubectl apply -f {out}" in done.output
    (cron,) = yaml.safe_load_all((out / "cronjob.yaml").read_text())
    assert cron["spec"]["startingDeadlineSeconds"] == 600  # the file's startingDeadline: 10m
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/cm:1"


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            lambda d: d["method"][0]["provider"].update(
                module="chaosk8s.pod.actions", func="exec_in_pods", arguments={"cmd": "true"}
            ),
            "what chaosk8s.pod.actions.exec_in_pods (a.json: delay-ratings) asks of the "
            "Kubernetes API is not known",
        ),
        (
            lambda d: d.update(configuration={"namespace": {"type": "env", "key": "NOPE_NS"}}),
            "NOPE_NS",
        ),
    ],
    ids=["unknown-activity", "namespace-from-the-environment"],
)
def test_an_unusable_game_day_exits_2_naming_it_and_writes_nothing(tmp_path, change, says):
    document = by_name()
    change(document)
    gameday = write_gameday(tmp_path, {"a": document})
    out = tmp_path / "out"
    done = render(gameday.source, "-o", out)
    assert done.exit_code == 2, done.output
    assert says in done.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--results-claim", "Not_A_Name"], "--results-claim"),
        (["--image", "has space"], "--image"),
        (["--env", "NO_EQUALS"], "'NO_EQUALS' is not NAME=VALUE"),
        (["--env", "CHAOSTOOLKIT_IN_POD=false"], "CHAOSTOOLKIT_IN_POD is set by render itself"),
    ],
)
def test_bad_options_exit_2_naming_the_option(tmp_path, options, says):
    gameday = write_gameday(tmp_path, {"a": by_name()})
    done = render(gameday.source, "-o", tmp_path / "out", *options)
    assert done.exit_code == 2, done.output
    assert says in done.output
    assert not (tmp_path / "out").exists()


def test_a_game_day_without_a_schedule_exits_2(tmp_path):
    gameday = write_gameday(tmp_path, {"a": experiment("x", by_name()["method"])})
    text = gameday.source.read_text()
    gameday.source.write_text(
        "\n".join(line for line in text.splitlines() if not line.startswith("schedule"))
    )
    done = render(gameday.source, "-o", tmp_path / "out")
    assert done.exit_code == 2, done.output
    assert "schedule: the game day has none" in done.output
