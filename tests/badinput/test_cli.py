"""Hostile input to every `chaosmesh` command: exit 2, a line naming the fix, never a traceback.

Each case is what a user types (or has lying around: a broken kubeconfig, a file where a
directory should be); the table runs them through the CLI in this process, and a few through
the installed command, as a shell would.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from chaosmesh_py import cli
from chaosmesh_py.cli import main
from tests.conftest import ROOT

CHAOSMESH = str(Path(sys.executable).parent / "chaosmesh")
NOWHERE = "https://127.0.0.1:9"
EXPERIMENT = ROOT / "experiments/bookinfo-ratings-delay.json"


def kubeconfig(current="", names=("staging", "prod"), cluster="c", **edits):
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": NOWHERE}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": n, "context": {"cluster": cluster, "user": "u"}} for n in names],
    }
    if current:
        config["current-context"] = current
    config.update(edits)
    return yaml.safe_dump(config)


NO_CURRENT = kubeconfig()
# Files as they turn up on disk: each with the words the message must contain.
KUBECONFIGS = {
    "no-current-context": (
        NO_CURRENT,
        ["sets no current context", "--context NAME", "KUBERNETES_CONTEXT", "chaosmesh-local"],
    ),
    "not-yaml": ("clusters: [\n  - {name: c\n", ["is not YAML at line", "point KUBECONFIG"]),
    "a-list": ("- clusters\n- users\n", ["is not a kubeconfig", "list, not a mapping"]),
    "an-experiment": (
        "title: oops\nmethod: []\n",
        ["is not a kubeconfig: it has no clusters, contexts or users"],
    ),
    "empty": ("", ["sets no current context"]),
    "stale-current-context": (
        kubeconfig(current="gone"),
        ["no current context 'gone'", "its contexts: staging, prod"],
    ),
    "context-without-cluster": (
        kubeconfig(current="staging", cluster="not-in-clusters"),
        ["context 'staging'", "cannot be used", "fix its cluster and user entries"],
    ),
    "missing-client-certificate": (
        kubeconfig(
            current="staging",
            users=[{"name": "u", "user": {"client-certificate": "/nowhere/cert.pem"}}],
        ),
        ["context 'staging'", "cannot be used"],
    ),
    "contexts-not-a-list": (
        "contexts: {staging: {}}\ncurrent-context: staging\n",
        ["contexts must be a list"],
    ),
}
CLUSTER_COMMANDS = [
    ["halt"],
    ["reap"],
    ["rollback", "--all"],
    ["halt", "-n", "bookinfo", "--json"],
    ["gameday", "pause", "bookinfo-gameday", "-n", "bookinfo", "--reason", "incident"],
    ["gameday", "resume", "bookinfo-gameday", "-n", "bookinfo"],
    ["gameday", "status", "bookinfo-gameday", "-n", "bookinfo", "--json"],
    ["gameday", "run", "experiments/bookinfo-gameday.yaml", "--no-jitter"],
    ["policy", "report", "-n", "bookinfo", "--from-metrics", "--prometheus", "http://127.0.0.1:9"],
]


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No credentials from the machine: each case gives its own. Were a case to run anything,
    it would reach the discard port, never a cluster of the machine's."""
    for name in ("KUBERNETES_CONTEXT", "CHAOSTOOLKIT_IN_POD", "CHAOSMESH_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    monkeypatch.setenv("KUBERNETES_HOST", NOWHERE)
    monkeypatch.setenv("PROMETHEUS_URL", NOWHERE)  # the Bookinfo game day's, read at its start
    (tmp_path / "experiments").symlink_to(ROOT / "experiments")
    monkeypatch.chdir(tmp_path)  # the gate's default journal directory lands here
    return tmp_path


def chaosmesh(*arguments, env=None):
    result = CliRunner().invoke(main, [str(a) for a in arguments], env=env)
    assert isinstance(result.exception, SystemExit | None), result.exception
    return result


def assert_refused(result, words):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, result.output
    # One message, readable: not a screenful of client internals.
    assert len(result.output) < 1200, result.output


@pytest.mark.parametrize("command", CLUSTER_COMMANDS, ids=" ".join)
@pytest.mark.parametrize("case", list(KUBECONFIGS))
def test_a_broken_kubeconfig_is_named_with_the_fix(isolated, command, case):
    text, words = KUBECONFIGS[case]
    (isolated / "kubeconfig").write_text(text)
    assert_refused(chaosmesh(*command), words)


@pytest.mark.parametrize("command", CLUSTER_COMMANDS, ids=" ".join)
@pytest.mark.parametrize("how", ["--context", "KUBERNETES_CONTEXT"])
def test_an_unknown_context_lists_the_contexts_there_are(isolated, command, how):
    (isolated / "kubeconfig").write_text(kubeconfig(current="staging"))
    if how == "--context":
        result = chaosmesh(*command, "--context", "no-such-context")
    else:
        result = chaosmesh(*command, env={"KUBERNETES_CONTEXT": "no-such-context"})
    assert_refused(result, ["no 'no-such-context'", "its contexts: staging, prod", "--context"])


def test_a_context_asked_for_without_any_kubeconfig_is_refused(isolated):
    assert_refused(
        chaosmesh("halt", "--context", "chaosmesh-local"),
        ["'chaosmesh-local' was asked for", "no kubeconfig at", "set KUBECONFIG"],
    )


def test_a_kubeconfig_that_is_a_directory_is_named(isolated):
    (isolated / "kubeconfig").mkdir()
    assert_refused(chaosmesh("reap"), ["cannot read", "Is a directory"])


@pytest.mark.parametrize(
    ("variable", "words"),
    [
        ("KUBERNETES_CA_CERT_FILE", ["KUBERNETES_CA_CERT_FILE: '/nowhere/ca.pem' does not exist"]),
        ("KUBERNETES_CERT_FILE", ["KUBERNETES_CERT_FILE: '/nowhere/ca.pem' does not exist"]),
    ],
)
def test_a_certificate_file_that_is_not_there_is_named(isolated, variable, words):
    env = {"KUBERNETES_HOST": NOWHERE, variable: "/nowhere/ca.pem"}
    assert_refused(chaosmesh("halt", env=env), words)


def test_in_pod_credentials_outside_a_pod_are_named(isolated):
    env = {"CHAOSTOOLKIT_IN_POD": "true"}
    assert_refused(chaosmesh("halt", env=env), ["CHAOSTOOLKIT_IN_POD", "not a pod"])


def _file(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("x")
    return path


# Option values every command refuses before doing anything: (arguments, words).
OPTION_CASES = {
    "validate nothing": (lambda t: ["validate"], ["Missing argument"]),
    "validate missing file": (lambda t: ["validate", t / "nowhere"], ["no such file"]),
    "validate a directory": (lambda t: ["validate", t], ["is a directory"]),
    "gate missing file": (lambda t: ["gate", t / "nowhere.json"], ["no such file"]),
    "gate journal dir is a file": (
        lambda t: ["gate", "--journal-dir", _file(t), EXPERIMENT],
        ["is a file"],
    ),
    "gate journal dir under a file": (
        lambda t: ["gate", "--journal-dir", _file(t) / "journals", EXPERIMENT],
        ["--journal-dir", "cannot be created"],
    ),
    "gate json report is a directory": (
        lambda t: ["gate", "--json", t, EXPERIMENT],
        ["is a directory"],
    ),
    "gate junit report under a file": (
        lambda t: ["gate", "--junit", _file(t) / "report.xml", EXPERIMENT],
        ["--junit", "cannot be created"],
    ),
    "rollback neither run nor all": (
        lambda t: ["rollback"],
        ["exactly one of --run ID, --all or --forget ID"],
    ),
    "rollback ledger dir is a file": (
        lambda t: ["rollback", "--all", "--ledger-dir", _file(t)],
        ["is a file"],
    ),
    "halt unknown api version": (lambda t: ["halt", "--istio-api-version", "v9"], ["'v9'"]),
    "reap unknown option": (lambda t: ["reap", "--everything"], ["No such option"]),
    "local up negative port": (
        lambda t: ["local", "up", "--state-dir", t / "s", "--api-port", "-1"],
        ["--api-port", "-1"],
    ),
    "local up port too big": (
        lambda t: ["local", "up", "--state-dir", t / "s", "--ingress-port", "70000"],
        ["--ingress-port", "70000"],
    ),
    "local up port not a number": (
        lambda t: ["local", "up", "--state-dir", t / "s", "--api-port", "eighty"],
        ["'eighty' is not a valid integer"],
    ),
    "local up state dir is a file": (
        lambda t: ["local", "up", "--state-dir", _file(t)],
        ["--state-dir", "is a file"],
    ),
    "local status state dir is a file": (
        lambda t: ["local", "status", "--state-dir", _file(t)],
        ["--state-dir", "is a file"],
    ),
    "local up kubeconfig is a directory": (
        lambda t: ["local", "up", "--state-dir", t / "s", "--kubeconfig", t],
        ["--kubeconfig", "is a directory"],
    ),
    "local down kubeconfig not a mapping": (
        lambda t: ["local", "down", "--state-dir", t / "s", "--kubeconfig", _list_file(t)],
        ["is not a kubeconfig", "list, not a mapping"],
    ),
    "local up kubeconfig not yaml": (
        lambda t: ["local", "up", "--state-dir", t / "s", "--kubeconfig", _broken_file(t)],
        ["is not YAML"],
    ),
    "unknown command": (lambda t: ["rollbak"], ["No such command"]),
}


def _list_file(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    return path


def _broken_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("clusters: [\n")
    return path


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_a_bad_option_value_is_refused_before_anything_happens(isolated, case):
    arguments, words = OPTION_CASES[case]
    before = sorted(isolated.rglob("*"))
    assert_refused(chaosmesh(*arguments(isolated)), words)
    created = sorted(set(isolated.rglob("*")) - set(before))
    assert not [p for p in created if p.name not in ("a-file", "list.yaml", "broken.yaml")]


def test_the_installed_command_shows_no_traceback(isolated):
    """What a shell sees: the cases that printed Python tracebacks before."""
    (isolated / "kubeconfig").write_text(NO_CURRENT)
    env = {**os.environ, "KUBECONFIG": str(isolated / "kubeconfig")}
    for command in (["halt", "--context", "no-such-context"], ["reap"], ["rollback", "--all"]):
        done = subprocess.run(
            [CHAOSMESH, *command], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""
        assert done.stderr.startswith("error: context: "), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_a_bug_exits_70_with_one_line_and_the_traceback_only_on_request(isolated, monkeypatch):
    from chaosmesh_py.engine import cleanup

    def broken(*_, **__):
        raise KeyError("a bug\nover two lines")

    (isolated / "kubeconfig").write_text(kubeconfig(current="staging"))
    monkeypatch.setattr(cleanup, "halt", broken)
    result = chaosmesh("halt")
    assert result.exit_code == cli.EXIT_INTERNAL_ERROR == 70
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert "internal error, a bug in chaosmesh (not in your input): KeyError" in result.output
    assert "CHAOSMESH_DEBUG=1" in result.output
    debug = chaosmesh("halt", env={"CHAOSMESH_DEBUG": "1"})
    assert debug.exit_code == 70
    assert "Traceback (most recent call last)" in debug.output and "in broken" in debug.output


def test_an_activity_gets_the_same_message_as_the_cli(isolated):
    from chaoslib.exceptions import ActivityFailed

    from chaosmesh_py.faults.probes import list_owned_faults

    (isolated / "kubeconfig").write_text(kubeconfig(current="staging"))
    with pytest.raises(ActivityFailed) as failed:
        list_owned_faults(secrets={"KUBERNETES_CONTEXT": "no-such-context"})
    assert "InvalidInput: context: no 'no-such-context'" in str(failed.value)
    assert "its contexts: staging, prod" in str(failed.value)


HOSTILE = [
    "",
    " ",
    "-",
    "--",
    "../..",
    "/",
    "é\u202e",
    "$(touch pwned)",
    "%s%n{}",
    "a\nb",
    "\x01\x1b[31m",
    "x" * 5000,
    "-1",
    "99999999999999999999",
]


def fuzzed_commands(tmp_path, count=60):
    """Commands with a hostile value in one option each: never a traceback, never exit 70."""
    import random

    chooser = random.Random(8)
    journal_input = str(tmp_path / "nowhere.json")  # invalid: the gate runs nothing
    shapes = [
        lambda v: ["halt", "--context", v],
        lambda v: ["reap", "-n", v],
        lambda v: ["halt", "-n", "bookinfo", "-n", v, "--json"],
        lambda v: ["rollback", "--all", "--ledger-dir", v],
        lambda v: ["rollback", "--all", "--context", v],
        lambda v: ["gate", "--json", v, journal_input],
        lambda v: ["gate", "--junit", v, journal_input],
        lambda v: ["gate", "--journal-dir", v, journal_input],
        lambda v: ["gate", v],
        lambda v: ["validate", v],
        lambda v: ["local", "status", "--state-dir", v],
        lambda v: ["local", "up", "--api-port", v, "--state-dir", str(tmp_path / "s")],
        lambda v: ["halt", "--istio-api-version", v],
    ]
    values = HOSTILE + [
        "".join(chooser.choice("ab-_./:%$\\'\"\t é0") for _ in range(chooser.randint(1, 40)))
        for _ in range(count)
    ]
    return [shape(value) for shape in shapes for value in values]


def test_hostile_option_values_never_show_a_traceback(isolated):
    (isolated / "kubeconfig").write_text(kubeconfig(current="staging"))
    codes = set()
    for arguments in fuzzed_commands(isolated, count=20):
        result = CliRunner().invoke(main, arguments)
        assert isinstance(result.exception, SystemExit | None), (arguments, result.exception)
        assert result.exit_code in (0, 1, 2, 3), (arguments, result.output)
        assert "Traceback" not in result.output, (arguments, result.output)
        codes.add(result.exit_code)
    assert 2 in codes and 3 in codes  # refused input, and an API that cannot be reached
    assert not (isolated / "pwned").exists()
