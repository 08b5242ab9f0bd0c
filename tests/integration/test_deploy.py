"""deploy/: the reaper's CronJob and the RBAC it and experimenters need, proven on the API double.

The manifests are checked against the code they run (the CLI command, the console script, the
resource the project edits), decoded by the kubernetes client's typed models (a misspelt field
is dropped there, so it shows as a difference), and their RBAC rules, read from the files, are
turned into a bearer token's permissions on the Kubernetes API double: with exactly those
rights `chaosmesh reap`, `chaosmesh halt`, injection and rollback work; without any one verb,
the reaper exits 3 naming it.
"""

import importlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from datetime import datetime
from importlib import metadata

import kubernetes.client
import pytest
import yaml
from chaoslib.exceptions import ActivityFailed
from click.testing import CliRunner
from packaging.requirements import Requirement

from chaosmesh_py.cli import main
from chaosmesh_py.engine import cleanup
from chaosmesh_py.engine.kinds import editable_kinds
from chaosmesh_py.engine.run import DEFAULT_TTL_S, RUN_ID_KEY
from chaosmesh_py.faults.actions import inject_abort, inject_delay
from chaosmesh_py.faults.injection import TTL_KEY
from chaosmesh_py.faults.probes import fault_is_injected, list_owned_faults
from chaosmesh_py.faults.rollbacks import remove_faults
from chaosmesh_py.istio.owner_record import OWNER_ANNOTATION_PREFIX
from chaosmesh_py.kube import Kube, virtual_service_kind
from chaosmesh_py.localmesh.apiserver import ApiFault, PolicyRule
from tests.conftest import NAMESPACE, ROOT, leftover_faults
from tests.integration.test_inject_rollback import V1, exact, read

DEPLOY = ROOT / "deploy"
REAPER = DEPLOY / "reaper.yaml"
REAPER_NAMESPACED = DEPLOY / "reaper-namespaced.yaml"
EXPERIMENTER = DEPLOY / "experimenter-rbac.yaml"
MANIFESTS = [REAPER, REAPER_NAMESPACED, EXPERIMENTER]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
KIND = virtual_service_kind()
TOKEN = "reaper-token"  # what the pod's service-account token is to the double


def documents(path):
    return list(yaml.safe_load_all(path.read_text()))


def one(path, kind):
    (found,) = [d for d in documents(path) if d["kind"] == kind]
    return found


def pod_spec(path):
    return one(path, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def container(path):
    (only,) = pod_spec(path)["containers"]
    return only


def policy(rules, namespaces=("*",)):
    """RBAC rules as the double's PolicyRules. A ClusterRole bound cluster-wide applies in every
    namespace and at the cluster scope ("*"); a Role only in its own namespace."""
    converted = []
    for rule in rules:
        # A field the double cannot honour would silently widen the grant: refuse it.
        unknown = set(rule) - {"apiGroups", "resources", "verbs"}
        assert not unknown, f"rule {rule} uses {unknown}, which this test cannot model"
        converted.append(
            PolicyRule(
                verbs=tuple(rule["verbs"]),
                resources=tuple(rule["resources"]),
                api_groups=tuple(rule["apiGroups"]),
                namespaces=tuple(namespaces),
            )
        )
    return converted


def without_verb(rules, verb):
    return [{**rule, "verbs": [v for v in rule["verbs"] if v != verb]} for rule in rules]


@pytest.fixture
def authenticated_as(api, monkeypatch):
    """Give the double one token with these rules and make the credentials path 3 send it
    (KUBERNETES_HOST + KUBERNETES_API_KEY, as chaosk8s reads them)."""

    def grant(rules, name="system:serviceaccount:chaosmesh-system:chaosmesh-reaper"):
        api.set_tokens({TOKEN: (name, rules)})
        monkeypatch.setenv("KUBERNETES_API_KEY", TOKEN)

    yield grant
    # Whatever the test left (it asserts what it expects first), as an admin would clear it.
    halt_as_admin(api)


def chaosmesh(*arguments):
    result = CliRunner().invoke(main, list(arguments))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def copy_ratings_into(api, namespace):
    api.create_namespace(namespace)
    api.create(
        {
            "apiVersion": V1,
            "kind": "VirtualService",
            "metadata": {"name": "ratings", "namespace": namespace},
            "spec": read(api)["spec"],
        }
    )


def delay(namespace, run_id, ttl_s, name="ratings"):
    return inject_delay(
        virtual_service=name,
        namespace=namespace,
        fixed_delay="2s",
        percentage=50,
        configuration={RUN_ID_KEY: run_id, TTL_KEY: ttl_s},
    )


def wait_until_expired(api, run_id):
    """Sleep until every expiry recorded for ``run_id`` has passed (TTL 1 s: about a second)."""
    key = f"{OWNER_ANNOTATION_PREFIX}{run_id}"
    annotations = [r["metadata"].get("annotations") or {} for r in api.list(V1, "VirtualService")]
    latest = max(
        datetime.fromisoformat(json.loads(a[key])["expires"]) for a in annotations if key in a
    )
    while datetime.now(latest.tzinfo) <= latest:
        time.sleep(0.05)


def halt_as_admin(api):
    api.set_tokens(None)
    cleanup.halt(Kube.connect())


# --- the files, checked against the code -------------------------------------------------


def differences(original, decoded, path=""):
    """Where the typed round trip changed the document: a dropped key is a misspelt field."""
    if isinstance(original, dict) and isinstance(decoded, dict):
        found = []
        for key in original.keys() | decoded.keys():
            if key not in decoded:
                found.append(f"{path}.{key}: unknown field, dropped")
            elif key not in original:
                found.append(f"{path}.{key}: added")
            else:
                found += differences(original[key], decoded[key], f"{path}.{key}")
        return found
    if isinstance(original, list) and isinstance(decoded, list) and len(original) == len(decoded):
        pairs = enumerate(zip(original, decoded, strict=True))
        return [d for i, (a, b) in pairs for d in differences(a, b, f"{path}[{i}]")]
    return [] if original == decoded else [f"{path}: {original!r} became {decoded!r}"]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_manifest_decodes_to_its_typed_kubernetes_object_unchanged(path):
    client = kubernetes.client.ApiClient()
    for document in documents(path):
        version = document["apiVersion"].rsplit("/", 1)[-1]
        model = f"{version.capitalize()}{document['kind']}"
        # The client's own deserializer: required fields enforced, unknown fields dropped.
        decoded = client.sanitize_for_serialization(client._ApiClient__deserialize(document, model))
        assert differences(document, decoded) == [], f"{path.name}: {document['kind']}"


EVERY_VERB = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


def granted(rules):
    """(group, resource) → the verbs the rules grant on it."""
    grants = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


@pytest.mark.parametrize(
    ("path", "kind"), [(REAPER, "ClusterRole"), (REAPER_NAMESPACED, "Role")], ids=["cluster", "ns"]
)
def test_the_reaper_role_is_exactly_what_removal_takes_on_every_kind_the_project_edits(path, kind):
    expected = {(k.kind.group, k.kind.plural): set(k.cleanup_verbs()) for k in editable_kinds()}
    assert granted(one(path, kind)["rules"]) == expected
    assert all(set(verbs) <= set(EVERY_VERB) for verbs in expected.values())


def test_the_reaper_identity_lines_up_from_service_account_to_pod():
    account = one(REAPER, "ServiceAccount")["metadata"]
    binding = one(REAPER, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": one(REAPER, "ClusterRole")["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]
    assert pod_spec(REAPER)["serviceAccountName"] == account["name"]
    # The namespace is created before anything is put in it (kubectl applies in file order).
    first, *rest = documents(REAPER)
    assert first["kind"] == "Namespace" and first["metadata"]["name"] == "chaosmesh-system"
    namespaced = [d for d in rest if d["kind"] not in ("ClusterRole", "ClusterRoleBinding")]
    assert {d["metadata"]["namespace"] for d in namespaced} == {"chaosmesh-system"}

    binding = one(REAPER_NAMESPACED, "RoleBinding")
    assert binding["roleRef"]["kind"] == "Role"
    assert binding["roleRef"]["name"] == one(REAPER_NAMESPACED, "Role")["metadata"]["name"]
    # No namespace anywhere: `kubectl apply -n NS` decides; the subject defaults to the binding's.
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "chaosmesh-reaper"}]
    assert all("namespace" not in d["metadata"] for d in documents(REAPER_NAMESPACED))
    assert pod_spec(REAPER_NAMESPACED)["serviceAccountName"] == "chaosmesh-reaper"


@pytest.mark.parametrize("path", [REAPER, REAPER_NAMESPACED], ids=lambda p: p.name)
def test_the_cronjob_runs_an_existing_chaosmesh_reap_safely_every_minute(path):
    cron = one(path, "CronJob")["spec"]
    job = cron["jobTemplate"]["spec"]
    pod = pod_spec(path)
    reaper = container(path)
    script, verb, *options = reaper["command"]
    assert PYPROJECT["project"]["scripts"][script] == "chaosmesh_py.cli:main"
    assert verb == "reap" and verb in main.commands
    # The options parse: the kubelet expands $(POD_NAMESPACE) from the env before the exec.
    options = [o.replace("$(POD_NAMESPACE)", NAMESPACE) for o in options]
    assert chaosmesh(verb, *options, "--help").exit_code == 0
    env = {e["name"]: e for e in reaper["env"]}
    assert env["CHAOSTOOLKIT_IN_POD"]["value"] == "true"
    for variable in re.findall(r"\$\((\w+)\)", " ".join(reaper["command"])):
        assert variable in env, f"{variable} is expanded but not defined"

    assert cron["schedule"] == "* * * * *"
    assert cron["concurrencyPolicy"] == "Forbid"
    assert 10 <= cron["startingDeadlineSeconds"] < 60
    assert cron["successfulJobsHistoryLimit"] <= 3
    # A hung sweep must end before the next is due, or Forbid blocks every later one.
    assert job["activeDeadlineSeconds"] < 60
    assert pod["restartPolicy"] in ("Never", "OnFailure") and job["backoffLimit"] <= 3
    assert pod["automountServiceAccountToken"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert reaper["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert (
        set(reaper["resources"]["requests"])
        == set(reaper["resources"]["limits"])
        == {
            "cpu",
            "memory",
        }
    )
    assert reaper["image"] == f"chaosmesh-py:{PYPROJECT['project']['version']}"


def test_the_namespaced_reaper_differs_only_in_its_command_and_env():
    cluster, namespaced = pod_spec(REAPER), pod_spec(REAPER_NAMESPACED)
    assert one(REAPER_NAMESPACED, "CronJob")["spec"]["schedule"] == "* * * * *"
    for key in cluster.keys() | namespaced.keys():
        if key != "containers":
            assert cluster.get(key) == namespaced.get(key), key
    (a,), (b,) = cluster["containers"], namespaced["containers"]
    assert {k: v for k, v in a.items() if k not in ("command", "env")} == {
        k: v for k, v in b.items() if k not in ("command", "env")
    }
    assert b["command"] == [*a["command"], "-n", "$(POD_NAMESPACE)"]
    downward = {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert {"name": "POD_NAMESPACE", "valueFrom": downward} in b["env"]


def dockerfile_instructions():
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    return [
        (word.upper(), rest.strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
        for word, _, rest in [line.strip().partition(" ")]
    ]


def test_the_image_runs_the_console_script_as_the_pod_s_user():
    instructions = dockerfile_instructions()
    values = {}
    for word, rest in instructions:
        values[word] = rest  # the last one wins, as in Docker
    assert values["FROM"] == "python:3.11-slim"
    assert json.loads(values["ENTRYPOINT"]) == list(PYPROJECT["project"]["scripts"])
    uid, gid = (int(part) for part in values["USER"].split(":"))
    context = pod_spec(REAPER)["securityContext"]
    assert (uid, gid) == (context["runAsUser"], context["runAsGroup"])
    assert uid != 0 and gid != 0
    # The image holds the project from the build context, without the local-mesh extras.
    assert ("RUN", "pip install . && rm -rf /build") in instructions
    copied = {
        source for word, rest in instructions if word == "COPY" for source in rest.split()[:-1]
    }
    assert {"pyproject.toml", PYPROJECT["project"]["readme"], "chaosmesh_py"} <= copied


def test_the_readme_states_the_real_ttl_default_and_key():
    text = (DEPLOY / "README.md").read_text()
    assert f"`{TTL_KEY}`" in text and f"default {DEFAULT_TTL_S} s" in text
    for path in [*MANIFESTS, DEPLOY / "Dockerfile"]:
        assert f"`{path.name}`" in text, f"{path.name} is not described"


def kubectl_reads(path):
    """The objects kubectl decodes from ``path`` (a file or a directory), as kind/name, with
    no server at all: `apply --dry-run=client` still asks one for discovery, `label --local`
    does not."""
    if not shutil.which("kubectl"):
        if os.environ.get("CHAOSMESH_REQUIRE_KUBECTL"):
            pytest.fail("CHAOSMESH_REQUIRE_KUBECTL is set but kubectl is not installed")
        pytest.skip("kubectl is not installed")
    done = subprocess.run(
        ["kubectl", "label", "--local", "-f", str(path), "chaosmesh.io/check=1", "-o", "name"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "KUBECONFIG": os.devnull},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_kubectl_reads_every_manifest():
    for path in MANIFESTS:
        read = kubectl_reads(path)
        expected = [
            f"{d['kind'].lower()}{'.' + g if (g := d['apiVersion'].rpartition('/')[0]) else ''}"
            f"/{d['metadata']['name']}"
            for d in documents(path)
        ]
        assert read == expected


# --- the rules, proven on the API double ---------------------------------------------------


def extras_only_modules():
    """Top-level modules of the `local` extra that no core dependency brings: the image,
    installed without the extra, lacks exactly these."""

    def closure(requirements, extras=("",)):
        seen, queue = set(), list(requirements)
        while queue:
            requirement = Requirement(queue.pop())
            name = requirement.name.lower()
            if requirement.marker and not any(
                requirement.marker.evaluate({"extra": e}) for e in extras
            ):
                continue
            if name in seen:
                continue
            seen.add(name)
            queue += metadata.requires(name) or []
        return seen

    project = PYPROJECT["project"]
    core = closure(project["dependencies"])
    local_only = closure(project["optional-dependencies"]["local"]) - core
    modules = set()
    for name in local_only:
        files = metadata.files(name) or []
        modules |= {f.parts[0].removesuffix(".py") for f in files if len(f.parts) <= 2}
    return sorted(m for m in modules if m.isidentifier() and not m.startswith("__"))


def reap_as_the_image_would(api, options):
    """The CronJob's exact command in another process, with the `local` extra's modules
    unimportable (as in deploy/Dockerfile's image)."""
    blocked = extras_only_modules()
    assert "jsonpatch" in blocked and "envoy" in blocked  # the closure did find the extra
    program = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "from chaosmesh_py.cli import main\n"
        "main(sys.argv[1:], prog_name='chaosmesh')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", program, *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "KUBERNETES_HOST": api.url, "KUBERNETES_API_KEY": TOKEN},
    )


def test_the_reaper_role_alone_reaps_expired_faults_everywhere_then_halts_the_rest(
    api, authenticated_as
):
    copy_ratings_into(api, "team-a")
    delay(NAMESPACE, "expired", ttl_s=1)
    delay("team-a", "expired", ttl_s=1)
    live = delay(NAMESPACE, "live", ttl_s=3600, name="reviews")  # reviews has two routes
    live_before = json.loads(exact(read(api, "reviews")))
    wait_until_expired(api, "expired")

    authenticated_as(policy(one(REAPER, "ClusterRole")["rules"]))
    api.request_log.clear()
    _, *options = container(REAPER)["command"]
    done = reap_as_the_image_would(api, [*options, "--json"])
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)["reap"]
    assert report["complete"] and report["routes_removed"] == 2
    assert sorted(r["resource"] for r in report["removed"]) == [
        f"VirtualService {NAMESPACE}/ratings",
        "VirtualService team-a/ratings",
    ]
    left = [f.split(":")[0] for f in leftover_faults(api)]
    assert left == [f"{NAMESPACE}/reviews"] * (len(live["routes"]) + 1)  # + its annotation
    assert json.loads(exact(read(api, "reviews"))) == live_before
    # Every request went through RBAC: the double answers 401 to anything without the token.
    assert any(entry[0] == "PATCH" for entry in api.request_log)

    halted = chaosmesh("halt", "--json")
    assert halted.exit_code == 0, halted.stderr
    (removed,) = json.loads(halted.stdout)["halt"]["removed"]
    assert removed["resource"] == f"VirtualService {NAMESPACE}/reviews"
    assert (removed["run_ids"], removed["routes"]) == (["live"], live["routes"])
    # What each copy did, for people (route_copy.describe_copy).
    assert sorted(removed["what"]) == sorted(live["routes"])
    assert leftover_faults(api) == []


@pytest.mark.parametrize("verb", ["get", "list", "patch"])
def test_without_any_one_of_its_verbs_the_reaper_exits_3_naming_it(api, authenticated_as, verb):
    delay(NAMESPACE, "expired", ttl_s=1)
    wait_until_expired(api, "expired")
    if verb == "get":
        # A sweep reads only after a 409: another writer gets in between, as in real life.
        api.inject(
            ApiFault(
                method="PATCH",
                path="ratings",
                concurrent_write=lambda server: server.patch(
                    V1, "VirtualService", NAMESPACE, "ratings", {"metadata": {"labels": {"a": "b"}}}
                ),
            )
        )
    authenticated_as(policy(without_verb(one(REAPER, "ClusterRole")["rules"], verb)))
    done = chaosmesh("reap")
    assert done.exit_code == 3, done.output
    where = "across all namespaces" if verb == "list" else f"in namespace '{NAMESPACE}'"
    assert f"forbidden: needs {verb} on virtualservices.networking.istio.io {where}" in (
        done.output
    )
    assert "Traceback" not in done.output
    assert [f.split(":")[0] for f in leftover_faults(api)] == [f"{NAMESPACE}/ratings"] * 2


def test_the_namespaced_reaper_role_reaps_its_namespace_and_only_with_n(api, authenticated_as):
    copy_ratings_into(api, "team-a")
    delay(NAMESPACE, "expired", ttl_s=1)
    delay("team-a", "expired", ttl_s=1)
    wait_until_expired(api, "expired")
    authenticated_as(policy(one(REAPER_NAMESPACED, "Role")["rules"], namespaces=[NAMESPACE]))

    everywhere = chaosmesh("reap")
    assert everywhere.exit_code == 3
    assert "needs list on virtualservices.networking.istio.io across all namespaces" in (
        everywhere.output
    )
    _, *options = container(REAPER_NAMESPACED)["command"]
    done = chaosmesh(*[o.replace("$(POD_NAMESPACE)", NAMESPACE) for o in options])
    assert done.exit_code == 0, done.output
    assert [f.split(":")[0] for f in leftover_faults(api)] == ["team-a/ratings"] * 2


def test_the_experimenter_role_injects_observes_and_rolls_back(api, authenticated_as):
    before = {name: exact(read(api, name)) for name in ("ratings", "reviews")}
    authenticated_as(policy(one(EXPERIMENTER, "ClusterRole")["rules"]), name="jane")
    configuration = {RUN_ID_KEY: "experimenter"}
    inject_delay(
        virtual_service="ratings",
        namespace=NAMESPACE,
        fixed_delay="7s",
        percentage=100,
        headers={"end-user": "jason"},
        configuration=configuration,
    )
    inject_abort(  # by host: needs list
        host="reviews",
        namespace=NAMESPACE,
        http_status=503,
        percentage=10,
        configuration=configuration,
    )
    assert fault_is_injected(
        virtual_service="ratings", namespace=NAMESPACE, configuration=configuration
    )
    owned = list_owned_faults(configuration=configuration)  # cluster-wide list
    assert {f["run_id"] for f in owned} == {"experimenter"}
    remove_faults(virtual_service="ratings", namespace=NAMESPACE, configuration=configuration)
    remove_faults(namespace=NAMESPACE, configuration=configuration)  # the rest of the run
    assert leftover_faults(api) == []
    assert {name: exact(read(api, name)) for name in before} == before


def test_the_experimenter_role_without_patch_fails_the_action_naming_it(api, authenticated_as):
    rules = without_verb(one(EXPERIMENTER, "ClusterRole")["rules"], "patch")
    authenticated_as(policy(rules), name="jane")
    with pytest.raises(ActivityFailed, match="needs patch on virtualservices"):
        delay(NAMESPACE, "denied", ttl_s=60)
    assert leftover_faults(api) == []


# chaosk8s calls the kubernetes client by these names; what each needs in RBAC.
_K8S_CALL = re.compile(r"\.(list|read)_namespaced_(\w+?)(?:_status)?\(")
_RESOURCE = {"pod": ("", "pods"), "deployment": ("apps", "deployments")}


def chaosk8s_functions():
    """Every chaostoolkit-kubernetes probe the experiments in experiments/ use (its actions,
    which write, are granted where they may run: gameday/rbac.py's table)."""
    found = set()

    def walk(node):
        if isinstance(node, dict):
            provider = node.get("provider")
            module = str(provider.get("module", "")) if isinstance(provider, dict) else ""
            if module.startswith("chaosk8s") and module.endswith(".probes"):
                found.add((provider["module"], provider["func"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted((ROOT / "experiments").glob("*.json")):
        walk(json.loads(path.read_text()))
    return sorted(found)


def test_the_chaosk8s_actions_of_the_experiments_have_known_rbac():
    from chaosmesh_py.gameday.rbac import CHAOSK8S

    actions = set()
    for path in sorted((ROOT / "experiments").glob("*.json")):
        for step in json.loads(path.read_text()).get("method", []):
            module = str((step.get("provider") or {}).get("module", ""))
            if module.startswith("chaosk8s") and module.endswith(".actions"):
                actions.add(f"{module}.{step['provider']['func']}")
    assert "chaosk8s.pod.actions.terminate_pods" in actions
    assert actions <= set(CHAOSK8S), actions - set(CHAOSK8S)


def test_the_experimenter_role_reads_what_the_experiments_chaosk8s_probes_read():
    functions = chaosk8s_functions()
    assert functions, "no chaosk8s activity found in experiments/: update this test"
    user_rules = policy(one(EXPERIMENTER, "ClusterRole")["rules"], namespaces=[NAMESPACE])
    for module, func in functions:
        source = inspect.getsource(getattr(importlib.import_module(module), func))
        calls = _K8S_CALL.findall(source)
        assert calls, f"{module}.{func}: no kubernetes call found"
        for method, kind in calls:
            assert kind in _RESOURCE, f"{module}.{func} reads {kind}: add it to the role"
            group, resource = _RESOURCE[kind]
            verb = "list" if method == "list" else "get"
            assert any(r.allows(verb, group, resource, NAMESPACE) for r in user_rules), (
                f"{module}.{func} needs {verb} on {resource}"
            )
    # Read-only beyond the kinds chaosmesh edits; on those, at least what removal takes.
    edited = {(k.kind.group, k.kind.plural) for k in editable_kinds()}
    grants = granted(one(EXPERIMENTER, "ClusterRole")["rules"])
    for key, verbs in grants.items():
        if key not in edited:
            assert verbs <= {"get", "list"}, key
    for key, verbs in granted(one(REAPER, "ClusterRole")["rules"]).items():
        assert verbs <= grants[key], key
