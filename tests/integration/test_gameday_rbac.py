"""The RBAC `chaosmesh gameday render` derives is what the game day's activities use.

On the API double, the rendered ServiceAccount, Roles and bindings are stored as a cluster
stores them, and a token names the ServiceAccount's user with no rules of its own: the double
authorizes it by those objects alone, as Kubernetes' RBAC authorizer does. So authenticated,
every experiment of the game day runs (each in `chaos run`, as the runner runs them) with every
activity succeeding and every fault rolled back, and `chaosmesh gameday run` itself takes its
Lease and state ConfigMap; without any one verb of any rule, something fails with a 403
naming it.
"""

import copy
import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from chaosmesh_py.gameday import render
from chaosmesh_py.localmesh.apiserver import User
from chaosmesh_py.verdict.gate import chaos_command
from tests.conftest import NAMESPACE, leftover_faults
from tests.gameday_render_fixtures import by_host, by_name, write_gameday
from tests.integration.test_deploy import copy_ratings_into

TOKEN = "gameday-token"
ACCOUNT = "system:serviceaccount:bookinfo:weekly"
OTHER = "team-a"
RUNNER_RESOURCES = {"leases", "configmaps"}  # the runner's own, by name (see the docstring)


@pytest.fixture
def gameday(tmp_path):
    # 01 by name in another namespace (a Role there, one object); 02 by host here (a list).
    return write_gameday(tmp_path, {"01-there": by_name(namespace=OTHER), "02-here": by_host()})


@pytest.fixture
def rendered(gameday, tmp_path):
    files = render.render(gameday)
    render.write(files, tmp_path / "manifests")
    return [d for text in files.values() for d in yaml.safe_load_all(text)]


def rules_of(documents):
    """Every Role's and ClusterRole's rules, as (namespace or None, rule) pairs."""
    found = []
    for document in documents:
        if document["kind"] == "Role":
            found += [(document["metadata"]["namespace"], r) for r in document["rules"]]
        elif document["kind"] == "ClusterRole":
            found += [(None, r) for r in document["rules"]]
    return found


def without(documents, namespace, resource, names, verb):
    """The documents with ``verb`` taken out of the rule on ``resource`` (by ``names``) of the
    Role in ``namespace``."""
    reduced = copy.deepcopy(documents)
    for document in reduced:
        if document["kind"] == "Role" and document["metadata"]["namespace"] == namespace:
            for rule in document["rules"]:
                if resource in rule["resources"] and tuple(rule.get("resourceNames", ())) == names:
                    rule["verbs"] = [v for v in rule["verbs"] if v != verb]
            # A rule with no verb left is no rule (the API refuses it).
            document["rules"] = [rule for rule in document["rules"] if rule["verbs"]]
    return reduced


RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")


@contextmanager
def authenticated_as_the_game_day(api, documents):
    """The rendered identity and RBAC stored in the double; the token is the ServiceAccount's,
    with no rules of its own."""
    for document in documents:
        if document["kind"] in RBAC_KINDS:
            namespace = document["metadata"].get("namespace")
            if namespace and api.get("v1", "Namespace", None, namespace) is None:
                api.create_namespace(namespace)
            name = document["metadata"]["name"]
            if api.get(document["apiVersion"], document["kind"], namespace, name) is None:
                api.create(document)
    api.set_tokens({TOKEN: User(ACCOUNT)})
    try:
        yield
    finally:
        api.set_tokens(None)


def run_as_the_game_day(api, gameday, documents, tmp_path):
    """Each experiment in `chaos run` (the runner's command line), authenticated as the game
    day's ServiceAccount under ``documents``' RBAC; their journals."""
    journals = []
    with authenticated_as_the_game_day(api, documents):
        for index, step in enumerate(gameday.experiments):
            journal, log = tmp_path / f"{index}.journal.json", tmp_path / f"{index}.log"
            done = subprocess.run(
                chaos_command(step.path, journal, log, None),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                env={**os.environ, "KUBERNETES_API_KEY": TOKEN},
            )
            assert journal.exists(), done.stderr
            journals.append(json.loads(journal.read_text()))
    return journals


def activity_outcomes(journal):
    entries = [*(journal.get("run") or []), *(journal.get("rollbacks") or [])]
    return {e["activity"]["name"]: (e["status"], e.get("exception")) for e in entries}


def test_exactly_the_rendered_rules_run_every_activity_and_roll_everything_back(
    api, gameday, rendered, tmp_path
):
    copy_ratings_into(api, OTHER)
    before = {
        ns: api.get("networking.istio.io/v1", "VirtualService", ns, "ratings")
        for ns in (NAMESPACE, OTHER)
    }
    api.request_log.clear()
    journals = run_as_the_game_day(api, gameday, rendered, tmp_path)
    for journal in journals:
        outcomes = activity_outcomes(journal)
        assert outcomes and all(status == "succeeded" for status, _ in outcomes.values()), outcomes
        assert journal["chaosmesh"]["rollback_complete"] is True
        assert "forbidden" not in json.dumps(journal).lower()
    # The faults were really there: a by-name delay in team-a, a by-host abort of reviews here.
    assert [j["run"][0]["output"]["virtual_service"] for j in journals] == [
        f"{OTHER}/ratings",
        f"{NAMESPACE}/reviews",
    ]
    assert journals[1]["run"][1]["output"], "list_owned_faults saw the run's own fault"
    assert any(method == "PATCH" for method, *_ in api.request_log)
    assert leftover_faults(api) == []
    for ns, resource in before.items():
        after = api.get("networking.istio.io/v1", "VirtualService", ns, "ratings")
        assert after["spec"] == resource["spec"]


# What the experiments' rules grant, one verb at a time: each removal below must break a run.
EXPERIMENT_GRANTS = [
    (OTHER, "virtualservices", ("ratings",), "get"),
    (OTHER, "virtualservices", ("ratings",), "patch"),
    (NAMESPACE, "virtualservices", (), "get"),
    (NAMESPACE, "virtualservices", (), "list"),
    (NAMESPACE, "virtualservices", (), "patch"),
]


def test_the_experiments_rules_are_these_verbs_and_nothing_else(rendered):
    grants = sorted(
        (namespace, resource, tuple(rule.get("resourceNames", ())), verb)
        for namespace, rule in rules_of(rendered)
        for resource in rule["resources"]
        if resource not in RUNNER_RESOURCES
        for verb in rule["verbs"]
    )
    assert grants == sorted(EXPERIMENT_GRANTS)


@pytest.mark.parametrize(
    "grant",
    EXPERIMENT_GRANTS,
    ids=[f"{ns}-{verb}{'-' + n[0] if n else ''}" for ns, _, n, verb in EXPERIMENT_GRANTS],
)
def test_without_any_one_verb_a_run_fails_with_403_naming_it(
    api, gameday, rendered, tmp_path, grant
):
    namespace, resource, names, verb = grant
    copy_ratings_into(api, OTHER)
    reduced = without(rendered, namespace, resource, names, verb)
    journals = run_as_the_game_day(api, gameday, reduced, tmp_path)
    failures = [
        "".join(exception)  # Chaos Toolkit keeps the traceback's lines
        for journal in journals
        for status, exception in activity_outcomes(journal).values()
        if status == "failed"
    ]
    expected = (
        f"forbidden: needs {verb} on {resource}.networking.istio.io in namespace '{namespace}'"
    )
    assert any(expected in failure for failure in failures), failures
    assert leftover_faults(api) == []


def run_the_runner(api, gameday, documents, results):
    """`chaosmesh gameday run` as the CronJob runs it, under ``documents``' RBAC."""
    with authenticated_as_the_game_day(api, documents):
        return subprocess.run(
            [
                str(Path(sys.executable).parent / "chaosmesh"),
                "gameday",
                "run",
                str(gameday.source),
                "--results",
                str(results),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, "KUBERNETES_API_KEY": TOKEN},
        )


def test_the_runner_itself_works_under_the_rendered_rules(api, gameday, rendered, tmp_path):
    """Its Lease, its state ConfigMap and every experiment, with no 403 anywhere."""
    copy_ratings_into(api, OTHER)
    results = tmp_path / "results"
    done = run_the_runner(api, gameday, rendered, results)
    output = done.stdout + done.stderr
    assert done.returncode not in (2, 70), output
    assert "forbidden" not in output.lower(), output
    (record,) = results.glob(f"{gameday.name}/*/gameday.json")
    ran = json.loads(record.read_text())
    assert "forbidden" not in json.dumps(ran).lower()
    assert len(ran["experiments"]) == len(gameday.experiments)
    assert leftover_faults(api) == []


RUNNER_GRANTS = [
    (resource, names, verb)
    for resource in ("leases", "configmaps")
    for names, verbs in (((), ("create",)), (("chaosmesh-gameday-weekly",), ("get", "patch")))
    for verb in verbs
]


@pytest.mark.parametrize("grant", RUNNER_GRANTS, ids=lambda g: f"{g[0]}-{g[2]}")
def test_without_any_one_of_the_runner_s_verbs_the_runner_says_it_was_forbidden(
    api, gameday, rendered, tmp_path, grant
):
    resource, names, verb = grant
    copy_ratings_into(api, OTHER)
    reduced = without(rendered, NAMESPACE, resource, names, verb)
    # The first run creates the Lease and the state ConfigMap; every later run finds them.
    output = ""
    for attempt in ("first", "later"):
        done = run_the_runner(api, gameday, reduced, tmp_path / attempt)
        output += done.stdout + done.stderr
        for record in (tmp_path / attempt).glob("*/*/gameday.json"):
            output += record.read_text()
    group = "coordination.k8s.io" if resource == "leases" else ""
    named = f"{resource}.{group}" if group else resource
    assert f"needs {verb} on {named}" in output, output
    assert leftover_faults(api) == []


def apply(kubeconfig, directory):
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "apply", "-f", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_kubectl_applies_the_rendered_manifests_to_the_local_api(api, gameday, tmp_path):
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed")
    api.create_namespace(OTHER)
    directory = tmp_path / "manifests"
    render.write(render.render(gameday), directory)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "double", "cluster": {"server": api.url}}],
                "users": [{"name": "admin", "user": {}}],
                "contexts": [{"name": "double", "context": {"cluster": "double", "user": "admin"}}],
                "current-context": "double",
            }
        )
    )
    # Plain apply: kubectl validates against the API's /openapi, as on a cluster.
    done = apply(kubeconfig, directory)
    assert done.returncode == 0, done.stderr
    applied = sorted(line.split()[0] for line in done.stdout.splitlines())
    assert "cronjob.batch/weekly" in applied and "configmap/weekly-files" in applied
    assert api.get("batch/v1", "CronJob", NAMESPACE, "weekly")["spec"]["timeZone"] == (
        "Europe/Berlin"
    )
    again = apply(kubeconfig, directory)
    assert again.returncode == 0, again.stderr
    assert all(line.endswith("unchanged") for line in again.stdout.splitlines()), again.stdout
