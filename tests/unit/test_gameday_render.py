"""`chaosmesh gameday render` as data: the CronJob's fields, the ConfigMap of files, the RBAC's
shape and where it comes from, and the refusals (no wildcard, no traceback, nothing written)."""

import base64
import dataclasses
import importlib
import inspect
import json
import os
import re
from pathlib import PurePosixPath

import kubernetes.client
import pytest
import yaml

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.gameday import rbac, render
from chaosmesh_py.gameday.suite import Grafana, Notification
from tests.conftest import ROOT
from tests.gameday_render_fixtures import (
    PROBES,
    activity,
    by_host,
    by_name,
    experiment,
    pods_probe,
    write_gameday,
)
from tests.integration.test_deploy import differences, dockerfile_instructions, kubectl_reads


def documents(files):
    return [d for text in files.values() for d in yaml.safe_load_all(text)]


def one(files, kind):
    (found,) = [d for d in documents(files) if d["kind"] == kind]
    return found


@pytest.fixture
def gameday(tmp_path):
    return write_gameday(tmp_path, {"01-by-name": by_name(), "02-by-host": by_host()})


def test_the_cronjob_has_every_field_the_issue_asks_for(gameday):
    files = render.render(gameday)
    cron = one(files, "CronJob")
    assert cron["metadata"] == {
        "name": "weekly",
        "namespace": "bookinfo",
        "labels": {
            "app.kubernetes.io/name": "chaosmesh-gameday",
            "app.kubernetes.io/instance": "weekly",
        },
    }
    spec = cron["spec"]
    assert spec["schedule"] == "30 10 * * 2" and spec["timeZone"] == "Europe/Berlin"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 600
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    assert job["ttlSecondsAfterFinished"] == 7 * 24 * 3600
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["terminationGracePeriodSeconds"] == 60  # time to roll back on SIGTERM
    assert pod["serviceAccountName"] == one(files, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["command"] == [
        "chaosmesh",
        "gameday",
        "run",
        "/gameday/gameday.yaml",
        "--results",
        "/results",
    ]
    assert container["image"] == render.DEFAULT_IMAGE
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["/gameday"]["readOnly"] is True
    assert volumes[mounts["/tmp"]["name"]]["emptyDir"] == {"sizeLimit": "64Mi"}
    claim = volumes[mounts["/results"]["name"]]["persistentVolumeClaim"]["claimName"]
    assert claim == one(files, "PersistentVolumeClaim")["metadata"]["name"] == "weekly-results"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {"CHAOSTOOLKIT_IN_POD": "true", "CHAOSMESH_LEDGER_DIR": "/results/ledger"}


def test_the_deadline_adds_up_what_the_experiments_declare(tmp_path):
    slow = by_name()
    slow["method"][0]["pauses"] = {"before": 100, "after": 20}
    slow["method"][1]["timeout"] = 200
    gameday = write_gameday(tmp_path, {"slow": slow})
    # jitter 60 + pause after 1 + the control's rollback 60 + the delay (pauses 120, budget 60)
    # + the probe's own timeout 200 + the rollback's budget 60; x 1.25, + 300.
    assert render.active_deadline_s(gameday) == 1002  # ceil(561 * 1.25 + 300)
    files = render.render(gameday)
    assert one(files, "CronJob")["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 1002


def test_the_image_s_user_is_the_pod_s():
    values = dict(dockerfile_instructions())
    assert values["USER"] == f"{render.IMAGE_UID}:{render.IMAGE_UID}"
    assert json.loads(values["ENTRYPOINT"]) == ["chaosmesh"]


def test_the_files_keep_their_layout_under_gameday_and_are_mounted_read_only(gameday):
    files = render.render(gameday, image="registry.example.com/chaosmesh-py:1.2.3")
    config_map = one(files, "ConfigMap")
    assert config_map["metadata"]["name"] == "weekly-files"
    pod = one(files, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.example.com/chaosmesh-py:1.2.3"
    (volume,) = [v["configMap"] for v in pod["volumes"] if "configMap" in v]
    assert volume["defaultMode"] == 0o444 and volume["name"] == "weekly-files"
    layout = {item["path"]: config_map["data"][item["key"]] for item in volume["items"]}
    assert sorted(layout) == [
        "experiments/01-by-name.json",
        "experiments/02-by-host.json",
        "gameday.yaml",
    ]
    for path, text in layout.items():
        assert text == (gameday.source.parent / path).read_text()


def test_a_referenced_file_ships_too_and_a_binary_one_as_binary_data(tmp_path):
    document = by_name()
    document["method"][1]["provider"]["arguments"]["namespace"] = "bookinfo"
    document["extensions"] = [{"name": "manifests", "path": "../manifests/mesh.yaml"}]
    gameday = write_gameday(tmp_path, {"with-manifest": document})
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "mesh.yaml").write_bytes(b"kind: Binary\n\xff\xfe\n")
    config_map = one(render.render(gameday), "ConfigMap")
    shipped = render.ship(gameday)
    assert PurePosixPath("manifests/mesh.yaml") in [s.path for s in shipped.files]
    (key,) = config_map["binaryData"]
    assert base64.b64decode(config_map["binaryData"][key]) == b"kind: Binary\n\xff\xfe\n"


def test_over_a_mebibyte_of_files_is_refused_naming_the_largest(gameday, tmp_path):
    big = by_name()
    big["description"] = "x" * (1024 * 1024)
    gameday = write_gameday(tmp_path, {"01-by-name": by_name(), "big": big})
    with pytest.raises(InvalidInput) as error:
        render.render(gameday)
    assert error.value.field == "experiments"
    assert "1048576 (1 MiB)" in str(error.value) and "experiments/big.json" in str(error.value)


def test_the_output_is_the_same_bytes_every_time(gameday):
    assert render.render(gameday) == render.render(gameday)


def test_every_document_decodes_to_its_typed_kubernetes_object_unchanged(gameday):
    client = kubernetes.client.ApiClient()
    files = render.render(gameday)
    assert sorted(files) == ["cronjob.yaml", "files.yaml", "rbac.yaml", "results.yaml"]
    for document in documents(files):
        version = document["apiVersion"].rsplit("/", 1)[-1]
        model = f"{version.capitalize()}{document['kind']}"
        decoded = client.sanitize_for_serialization(client._ApiClient__deserialize(document, model))
        assert differences(document, decoded) == [], document["kind"]


def test_an_existing_results_claim_replaces_the_rendered_one(gameday, tmp_path):
    out = tmp_path / "out"
    render.write(render.render(gameday), out)
    assert (out / "results.yaml").exists()
    files = render.render(gameday, results_claim="team-results")
    render.write(files, out)
    assert not (out / "results.yaml").exists()
    pod = one(files, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == ["team-results"]


# --- RBAC, derived ----------------------------------------------------------------------------


def test_rbac_follows_the_arguments_names_and_the_runner(gameday):
    files = render.render(gameday)
    role = one(files, "Role")
    assert role["metadata"]["namespace"] == "bookinfo"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "verbs": ["get", "patch"],
            "resourceNames": ["chaosmesh-gameday-weekly"],
        },
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "patch"],
            "resourceNames": ["chaosmesh-gameday-weekly"],
        },
        # By host (02): list to find it, then get and patch whichever it is; the named get and
        # patch of 01 add nothing to that.
        {
            "apiGroups": ["networking.istio.io"],
            "resources": ["virtualservices"],
            "verbs": ["get", "list", "patch"],
        },
    ]
    binding = one(files, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "weekly", "namespace": "bookinfo"}
    ]
    assert "ClusterRole" not in files["rbac.yaml"]
    # Each rule says who needs it.
    assert (
        "rules[4] get, list, patch virtualservices: 01-by-name.json (delay-in-place, delay-ratings,"
        in files["rbac.yaml"]
    )


def test_by_name_only_the_named_object_is_granted(tmp_path):
    gameday = write_gameday(tmp_path, {"by-name": by_name()})
    rules = one(render.render(gameday), "Role")["rules"]
    assert rules[-1] == {
        "apiGroups": ["networking.istio.io"],
        "resources": ["virtualservices"],
        "verbs": ["get", "patch"],
        "resourceNames": ["ratings"],
    }


def test_another_namespace_gets_its_own_role_bound_to_the_game_day_s_account(tmp_path):
    gameday = write_gameday(tmp_path, {"there": by_name(namespace="team-a")})
    files = render.render(gameday)
    roles = {d["metadata"]["namespace"]: d for d in documents(files) if d["kind"] == "Role"}
    assert sorted(roles) == ["bookinfo", "team-a"]
    assert [r["resources"] for r in roles["team-a"]["rules"]] == [["virtualservices"]]
    bindings = [d for d in documents(files) if d["kind"] == "RoleBinding"]
    assert {b["metadata"]["namespace"] for b in bindings} == {"bookinfo", "team-a"}
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "weekly", "namespace": "bookinfo"}
        ]


def test_a_cluster_wide_request_is_the_only_thing_in_a_cluster_role_and_says_why(tmp_path):
    listing = experiment(
        "every fault",
        [*by_name()["method"], activity("probe", "all-faults", PROBES, "list_owned_faults")],
    )
    gameday = write_gameday(tmp_path, {"listing": listing})
    files = render.render(gameday)
    cluster = one(files, "ClusterRole")
    assert cluster["rules"] == [
        {"apiGroups": ["networking.istio.io"], "resources": ["virtualservices"], "verbs": ["list"]}
    ]
    assert cluster["metadata"]["name"] == "chaosmesh-gameday-bookinfo-weekly"
    assert "namespace" not in cluster["metadata"]
    assert one(files, "ClusterRoleBinding")["roleRef"]["kind"] == "ClusterRole"
    comment = files["rbac.yaml"].split("kind: ClusterRole\n")[0].rsplit("---\n", 1)[-1]
    assert "these requests span every namespace" in comment
    assert "list virtualservices: listing.json (all-faults)" in comment


def test_terminate_pods_is_granted_list_and_delete_on_pods_in_its_namespace(tmp_path):
    kill = {
        "type": "action",
        "name": "kill-a-ratings-pod",
        "provider": {
            "type": "python",
            "module": "chaosk8s.pod.actions",
            "func": "terminate_pods",
            "arguments": {"label_selector": "app=ratings", "ns": "${namespace}", "rand": True},
        },
    }
    gameday = write_gameday(tmp_path, {"kill": experiment("kill", [kill])})
    files = render.render(gameday)
    rules = one(files, "Role")["rules"]
    assert {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "delete"]} in rules
    assert "list, delete pods: kill.json (kill-a-ratings-pod)" in files["rbac.yaml"]
    assert not [r for r in rules if r["resources"] == ["pods"] and "create" in r["verbs"]]


def test_chaosk8s_probes_are_granted_what_their_source_calls(tmp_path):
    probe = pods_probe("ratings-running", "${namespace}", "app=ratings")
    gameday = write_gameday(
        tmp_path, {"k8s": experiment("pods", by_name()["method"], probes=[probe])}
    )
    rules = one(render.render(gameday), "Role")["rules"]
    assert {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]} in rules


_CALL = re.compile(r"\.(list|read|delete|patch|create|replace)_namespaced_(\w+?)\(")
_PLURAL = {"pod": ("", "pods"), "deployment": ("apps", "deployments"), "service": ("", "services")}


_HELPER = re.compile(r"\b(_[a-z]\w*)\(")


def _source_with_helpers(module, function):
    """The function's source and that of the module's private helpers it calls (terminate_pods
    lists its pods in `_select_pods`)."""
    source = inspect.getsource(function)
    helpers = {name for name in _HELPER.findall(source) if callable(getattr(module, name, None))}
    return "\n".join([source, *(inspect.getsource(getattr(module, name)) for name in helpers)])


@pytest.mark.parametrize("qualified", sorted(rbac.CHAOSK8S))
def test_the_chaosk8s_table_is_what_each_function_s_source_calls(qualified):
    module_name, _, func = qualified.rpartition(".")
    module = importlib.import_module(module_name)
    calls = _CALL.findall(_source_with_helpers(module, getattr(module, func)))
    assert calls, f"{qualified}: no kubernetes call found in its source"
    called = {("list" if verb == "list" else verb, *_PLURAL[kind]) for verb, kind in calls}
    declared = {(a.verb, a.group, a.resource) for a in rbac.CHAOSK8S[qualified]({"ns": "x"})}
    assert declared == called


@pytest.mark.parametrize(
    ("provider", "field", "says"),
    [
        (
            {
                "type": "python",
                "module": "chaosk8s.pod.actions",
                "func": "exec_in_pods",
                "arguments": {"cmd": "true"},
            },
            "unknown.json: method[0].provider",
            "chaosk8s.pod.actions.exec_in_pods (unknown.json: x) asks of the Kubernetes API "
            "is not known",
        ),
        (
            {"type": "process", "path": "kubectl", "arguments": "delete pod -l app=ratings"},
            "unknown.json: method[0].provider.type",
            "a 'process' activity (unknown.json: x) may do anything",
        ),
    ],
    ids=["third-party", "process"],
)
def test_an_activity_whose_needs_are_unknown_is_refused_naming_it(tmp_path, provider, field, says):
    document = experiment("unknown", [{"type": "action", "name": "x", "provider": provider}])
    gameday = write_gameday(tmp_path, {"unknown": document})
    with pytest.raises(InvalidInput) as error:
        render.render(gameday)
    assert error.value.field == field
    assert says in str(error.value)
    assert "wildcard" in str(error.value) or "cannot be known" in str(error.value)


def test_an_experiment_the_runner_would_refuse_is_refused_naming_it(tmp_path):
    document = experiment(
        "missing",
        [
            {
                "type": "action",
                "name": "x",
                "provider": {"type": "python", "module": "no.such", "func": "f"},
            }
        ],
    )
    gameday = write_gameday(tmp_path, {"missing": document})
    with pytest.raises(InvalidInput) as error:
        render.render(gameday)
    assert error.value.field == str(gameday.experiments[0].path)
    assert "could not find Python module 'no.such' in activity 'x'" in str(error.value)
    assert "see `chaosmesh validate " in str(error.value)


def test_a_namespace_only_known_at_run_time_is_refused(tmp_path, monkeypatch):
    document = by_name()
    document["configuration"] = {"namespace": {"type": "env", "key": "GAMEDAY_NS"}}
    gameday = write_gameday(tmp_path, {"env": document})
    # Set here, where render runs: the pod still would not have it.
    monkeypatch.setenv("GAMEDAY_NS", "bookinfo")
    with pytest.raises(InvalidInput) as error:
        render.render(gameday)
    assert error.value.field == "env.json: configuration.namespace"
    assert "'GAMEDAY_NS' with no default" in str(error.value)


def test_a_game_day_without_a_schedule_or_with_a_long_name_is_refused(tmp_path):
    unscheduled = write_gameday(tmp_path, {"a": by_name()}, schedule=None)
    with pytest.raises(InvalidInput, match="schedule: the game day has none"):
        render.render(unscheduled)
    long = write_gameday(tmp_path, {"a": by_name()}, name="x" * 53)
    with pytest.raises(InvalidInput, match="a CronJob's name may have at most 52"):
        render.render(long)


def test_every_chaosmesh_activity_declares_its_needs():
    from chaosmesh_py import discover
    from chaosmesh_py.engine.access import declared

    activities = [a for a in discover()["activities"]]
    assert len(activities) >= 10
    for entry in activities:
        assert declared(entry["mod"], entry["name"]) is not None, f"{entry['mod']}.{entry['name']}"


def test_kubectl_reads_every_rendered_file(gameday, tmp_path):
    render.write(render.render(gameday), tmp_path / "out")
    read = kubectl_reads(tmp_path / "out")
    assert sorted(read) == [
        "configmap/weekly-files",
        "cronjob.batch/weekly",
        "persistentvolumeclaim/weekly-results",
        "role.rbac.authorization.k8s.io/chaosmesh-gameday-weekly",
        "rolebinding.rbac.authorization.k8s.io/chaosmesh-gameday-weekly",
        "serviceaccount/weekly",
    ]


def test_what_the_game_day_reads_from_its_environment_comes_from_a_secret_never_rendered(
    tmp_path, monkeypatch
):
    document = by_name()
    document["secrets"] = {"prometheus": {"token": {"type": "env", "key": "PROM_TOKEN"}}}
    monkeypatch.setenv("PROM_TOKEN", "s3cr3t-prom")
    monkeypatch.setenv("GRAFANA_TOKEN", "s3cr3t-grafana")
    gameday = write_gameday(
        tmp_path,
        {"with-secret": document},
        notifications=(
            Notification(
                "http",
                "https://hooks.example.com/${HOOK_PATH}",
                headers=(("Authorization", "Bearer ${HOOK_TOKEN}"),),
            ),
        ),
        grafana=Grafana("https://grafana.example.com", "GRAFANA_TOKEN"),
    )
    files = render.render(gameday)
    (container,) = one(files, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"
    ]
    from_secret = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e
    }
    names = ["GRAFANA_TOKEN", "HOOK_PATH", "HOOK_TOKEN", "PROM_TOKEN"]
    assert from_secret == {n: {"name": "weekly-env", "key": n} for n in names}
    assert "kubectl create secret generic weekly-env -n bookinfo" in files["cronjob.yaml"]
    everything = "".join(files.values())
    assert "s3cr3t" not in everything
    assert "Secret" not in {d["kind"] for d in documents(files)}


def test_experiments_outside_the_game_day_s_directory_keep_their_relative_place(tmp_path):
    gameday = write_gameday(tmp_path, {"a": by_name()})
    (tmp_path / "gamedays").mkdir()
    moved = gameday.source.rename(tmp_path / "gamedays" / "weekly.yaml")
    gameday = dataclasses.replace(gameday, source=moved)  # its experiments: ../experiments/a.json
    files = render.render(gameday)
    pod = one(files, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"][3] == "/gameday/gamedays/weekly.yaml"
    (volume,) = [v["configMap"] for v in pod["volumes"] if "configMap" in v]
    assert [i["path"] for i in volume["items"]] == ["experiments/a.json", "gamedays/weekly.yaml"]


def test_a_plain_variable_given_to_the_pod_moves_the_rbac_with_it(tmp_path, monkeypatch):
    document = by_name()
    document["configuration"] = {**document["configuration"]}
    document["configuration"]["namespace"] = {"type": "env", "key": "GAMEDAY_NS"}  # no default
    monkeypatch.delenv("GAMEDAY_NS", raising=False)
    gameday = write_gameday(tmp_path, {"shop": document})
    files = render.render(gameday, environment={"GAMEDAY_NS": "shop"})
    roles = {
        d["metadata"]["namespace"]: d["rules"] for d in documents(files) if d["kind"] == "Role"
    }
    assert roles["shop"] == [
        {
            "apiGroups": ["networking.istio.io"],
            "resources": ["virtualservices"],
            "verbs": ["get", "patch"],
            "resourceNames": ["ratings"],
        }
    ]
    (container,) = one(files, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"
    ]
    assert {"name": "GAMEDAY_NS", "value": "shop"} in container["env"]
    assert "GAMEDAY_NS" not in os.environ  # render's own environment is as it was


@pytest.mark.parametrize(
    ("environment", "says"),
    [
        ({"GRAFANA_TOKEN": "x"}, "GRAFANA_TOKEN is a secret of the game day"),
        ({"CHAOSMESH_LEDGER_DIR": "/x"}, "CHAOSMESH_LEDGER_DIR is set by render itself"),
        ({"1BAD": "x"}, "'1BAD' is not an environment variable's name"),
    ],
)
def test_a_variable_that_would_leak_a_secret_or_override_render_is_refused(
    tmp_path, environment, says
):
    gameday = write_gameday(
        tmp_path, {"a": by_name()}, grafana=Grafana("https://g.example.com", "GRAFANA_TOKEN")
    )
    with pytest.raises(InvalidInput) as error:
        render.render(gameday, environment=environment)
    assert error.value.field == "--env" and says in str(error.value)


def test_the_game_days_these_tests_build_are_what_their_files_load_as(gameday):
    from chaosmesh_py.gameday import suite

    assert suite.load(gameday.source) == dataclasses.replace(
        gameday, source=gameday.source.resolve()
    )


def test_a_schedule_tighter_than_a_run_is_warned_about(tmp_path):
    from datetime import UTC, datetime

    from chaosmesh_py.gameday.suite import Schedule

    now = datetime(2026, 12, 1, tzinfo=UTC)
    weekly = write_gameday(tmp_path, {"a": by_name()})
    assert render.overlap_warning(weekly, now) is None
    every_ten_minutes = dataclasses.replace(weekly, schedule=Schedule("*/10 * * * *", "UTC"))
    warning = render.overlap_warning(every_ten_minutes, now)
    deadline = render.active_deadline_s(every_ten_minutes)
    assert warning == (
        f"a run may last up to {deadline} s (activeDeadlineSeconds) but slots can be 600 s "
        "apart: while one runs, the next is skipped (concurrencyPolicy Forbid); space the "
        "schedule out, or shorten the game day"
    )


def test_a_secret_written_in_clear_is_refused_it_would_sit_in_a_config_map(tmp_path):
    document = by_name()
    document["secrets"] = {"grafana": {"token": "glsa_inline_value"}}
    gameday = write_gameday(tmp_path, {"inline": document})
    with pytest.raises(InvalidInput) as error:
        render.render(gameday)
    assert error.value.field == "inline.json: secrets.grafana.token"
    assert "glsa_inline_value" not in str(error.value)
    assert "Secret 'weekly-env'" in str(error.value)

    literal = write_gameday(
        tmp_path,
        {"a": by_name()},
        notifications=(
            Notification(
                "http", "https://hooks.example.com/x", headers=(("Authorization", "Bearer abc"),)
            ),
        ),
    )
    with pytest.raises(InvalidInput, match=r"headers\.Authorization: is written in the file"):
        render.render(literal)


def test_a_target_left_unsubstituted_is_refused_naming_the_activity(tmp_path):
    # chaosmesh's own activities are checked by `chaosmesh validate`; chaosk8s's are not.
    probe = pods_probe("pods-up", "${missing}", "a=b")
    gameday = write_gameday(
        tmp_path, {"typo": experiment("x", by_name()["method"], probes=[probe])}
    )
    with pytest.raises(InvalidInput) as error:
        render.render(gameday)
    assert error.value.field == "typo.json: steady-state-hypothesis.probes[0].provider.arguments"
    assert "typo.json: pods-up targets namespace '${missing}', which is no namespace" in (
        str(error.value)
    )


def test_a_prometheus_url_from_the_environment_is_given_in_clear_or_taken_from_the_secret(
    tmp_path,
):
    gameday = write_gameday(tmp_path, {"a": by_name()}, prometheus_url="${PROMETHEUS_URL}")

    def env_of(files):
        (container,) = one(files, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"][
            "containers"
        ]
        return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}

    from_secret = env_of(render.render(gameday))
    assert from_secret["PROMETHEUS_URL"] == {
        "secretKeyRef": {"name": "weekly-env", "key": "PROMETHEUS_URL"}
    }
    url = "http://prometheus.istio-system:9090"
    given = render.render(gameday, environment={"PROMETHEUS_URL": url})
    assert env_of(given)["PROMETHEUS_URL"] == url
    assert "kubectl create secret" not in given["cronjob.yaml"]


GAMEDAY_FILES = sorted(
    [*(ROOT / "experiments").glob("*gameday*.yaml"), ROOT / "tests/data/gameday.yaml"]
)


@pytest.mark.parametrize("path", GAMEDAY_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_game_day_file_in_the_repository_renders_for_its_namespace(path, tmp_path):
    from chaosmesh_py.gameday import suite

    gameday = suite.load(path)
    # The Bookinfo experiments read their namespace and Prometheus from the environment.
    environment = {
        "BOOKINFO_NAMESPACE": gameday.namespace,
        "PROMETHEUS_URL": "http://prometheus.istio-system:9090",
    }
    files = render.render(gameday, environment=environment)
    roles = [d for d in documents(files) if d["kind"] in ("Role", "ClusterRole")]
    assert [r["metadata"].get("namespace") for r in roles] == [gameday.namespace]
    resources = {res for rule in roles[0]["rules"] for res in rule["resources"]}
    assert {"virtualservices", "leases", "configmaps"} <= resources
    render.write(files, tmp_path / "out")
    assert len(kubectl_reads(tmp_path / "out")) == 6


@pytest.mark.parametrize(
    ("func", "arguments", "says"),
    [
        (
            "istio_error_ratio",
            {"prometheus_url": "", "service": "ratings"},
            "local.json: steady-state-hypothesis.probes[0].provider.arguments.prometheus_url: "
            "local-only: is empty: that means the local mesh's own Prometheus, and a cluster has "
            "none",
        ),
        (
            "envoy_counters",
            {"service": "ratings"},
            "probes[0].provider.arguments.envoy_counters: local-only: reads the local mesh's "
            "Envoy, which a cluster has not",
        ),
    ],
    ids=["empty-prometheus-url", "envoy-counters"],
)
def test_a_probe_only_the_local_mesh_can_answer_is_refused_for_the_cluster(
    tmp_path, func, arguments, says
):
    probe = activity("probe", "local-only", "chaosmesh_py.observe.probes", func, **arguments)
    probe["tolerance"] = True
    gameday = write_gameday(
        tmp_path, {"local": experiment("x", by_name()["method"], probes=[probe])}
    )
    with pytest.raises(InvalidInput) as error:
        render.render(gameday)
    assert says in str(error.value)


def test_a_guardrail_the_control_watches_is_granted_what_it_reads(tmp_path):
    document = by_name()
    guardrail = pods_probe("pods-still-running", "shop", "app=ratings")
    document["controls"][0]["provider"]["arguments"] = {
        "guardrail_interval_s": 2,
        "guardrails": [guardrail],
    }
    gameday = write_gameday(tmp_path, {"guarded": document})
    files = render.render(gameday)
    roles = {d["metadata"]["namespace"]: d for d in documents(files) if d["kind"] == "Role"}
    assert roles["shop"]["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]
    assert "list pods: guarded.json (pods-still-running)" in files["rbac.yaml"]


def test_routing_edits_are_granted_the_destination_rules_and_hosts_they_check(tmp_path):
    """A dark launch and a mirror to a named host: the VirtualService by name, DestinationRules
    listed where subsets are looked up (the namespace, then istio-system), and for the named
    host its Service's namespace and the ServiceEntries."""
    traffic = "chaosmesh_py.traffic.actions"
    document = experiment(
        "dark launch and shadow",
        [
            activity(
                "action",
                "reviews-v2-for-jason",
                traffic,
                "route_to_version",
                virtual_service="reviews",
                namespace="${namespace}",
                subset="v2",
                headers={"end-user": "jason"},
            ),
            activity(
                "action",
                "shadow-reviews",
                traffic,
                "mirror_traffic",
                virtual_service="reviews",
                namespace="${namespace}",
                percentage=10,
                mirror_host="reviews-shadow.shadow.svc.cluster.local",
                subset="v1",
            ),
        ],
        rollbacks=[activity("action", "undo", "chaosmesh_py.traffic.rollbacks", "remove_routing")],
    )
    grants = rbac.derive(write_gameday(tmp_path, {"01-traffic": document}))
    rules = {
        (namespace, rule.resource): rule.verbs
        for namespace, rules in grants.namespaced.items()
        for rule in rules
        if rule.group != "coordination.k8s.io" and rule.resource != "configmaps"
    }
    assert rules == {
        ("bookinfo", "virtualservices"): ("get", "patch"),
        ("bookinfo", "destinationrules"): ("list",),
        ("bookinfo", "serviceentries"): ("list",),
        ("shadow", "destinationrules"): ("list",),
        ("shadow", "services"): ("get", "list"),
        ("istio-system", "destinationrules"): ("list",),
    }
    assert grants.cluster == ()


def test_policy_edits_are_granted_get_and_patch_on_the_objects_they_set(tmp_path):
    """A timeout on a VirtualService by name, a circuit breaker on a DestinationRule found by
    host (a list of the namespace first), and their rollback: get + patch, nothing more."""
    resilience = "chaosmesh_py.resilience.actions"
    document = experiment(
        "request timeouts and circuit breaking",
        [
            activity(
                "action",
                "reviews-half-second",
                resilience,
                "set_route_timeout",
                virtual_service="reviews",
                namespace="${namespace}",
                timeout="0.5s",
            ),
            activity(
                "action",
                "httpbin-breaker",
                resilience,
                "set_connection_pool",
                host="httpbin",
                namespace="${namespace}",
                connection_pool={"tcp": {"maxConnections": 1}},
            ),
        ],
        rollbacks=[
            activity(
                "action",
                "restore",
                "chaosmesh_py.resilience.rollbacks",
                "restore_policies",
                virtual_service="reviews",
                namespace="${namespace}",
            )
        ],
    )
    grants = rbac.derive(write_gameday(tmp_path, {"01-policies": document}))
    rules = {
        (namespace, rule.resource, rule.names): rule.verbs
        for namespace, rules in grants.namespaced.items()
        for rule in rules
        if rule.group != "coordination.k8s.io" and rule.resource != "configmaps"
    }
    assert rules == {
        ("bookinfo", "virtualservices", ("reviews",)): ("get", "patch"),
        ("bookinfo", "destinationrules", ()): ("get", "list", "patch"),
    }
    assert grants.cluster == ()


def test_security_changes_are_granted_what_they_create_override_and_remove(tmp_path):
    """A DENY policy (created, deleted), a namespace's mTLS mode (listed, overridden or created)
    and their rollback: on those kinds exactly, and a list of the pods the selector picks."""
    security = "chaosmesh_py.security.actions"
    document = experiment(
        "deny reviews to ratings under STRICT",
        [
            activity(
                "action",
                "strict",
                security,
                "set_mtls_mode",
                mode="STRICT",
                namespace="${namespace}",
            ),
            activity(
                "action",
                "deny",
                security,
                "deny_requests",
                destination_labels={"app": "ratings"},
                namespace="${namespace}",
                sources={"principals": ["cluster.local/ns/bookinfo/sa/bookinfo-reviews"]},
            ),
        ],
        rollbacks=[
            activity(
                "action",
                "remove",
                "chaosmesh_py.security.rollbacks",
                "remove_security_changes",
                namespace="${namespace}",
            )
        ],
    )
    grants = rbac.derive(write_gameday(tmp_path, {"01-security": document}))
    rules = {
        (namespace, rule.resource, rule.names): set(rule.verbs)
        for namespace, rules in grants.namespaced.items()
        for rule in rules
        if rule.group != "coordination.k8s.io"
    }
    assert rules[("bookinfo", "peerauthentications", ())] >= {"list", "get", "patch", "create"}
    assert rules[("bookinfo", "authorizationpolicies", ())] >= {"create", "get", "delete"}
    assert rules[("bookinfo", "pods", ())] >= {"list"}
    assert "update" not in set().union(*rules.values())
    assert grants.cluster == ()
