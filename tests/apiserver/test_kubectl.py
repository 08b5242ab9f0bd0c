"""Plain `kubectl apply` against the API double, validation left on (no --validate=false).

kubectl reads /openapi/v3, finds that the server validates (`fieldValidation` on each kind's
PATCH), sends `fieldValidation=Strict` and shows the server's refusal; a second apply computes a
patch from the last-applied annotation (strategic merge for built-in kinds, merge patch for
custom ones). Skipped without kubectl, unless CHAOSMESH_REQUIRE_KUBECTL is set.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chaosmesh_py.localmesh.apiserver import ApiServer
from tests.apiserver.conftest import Kubectl

ROOT = Path(__file__).resolve().parents[2]
BOOKINFO = ROOT / "experiments" / "bookinfo"
DEPLOY = ROOT / "deploy"

GAMEDAY = """\
apiVersion: v1
kind: Namespace
metadata: {name: bookinfo}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: chaosmesh-gameday, namespace: bookinfo}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: chaosmesh-gameday, namespace: bookinfo}
rules:
- apiGroups: [networking.istio.io]
  resources: [virtualservices]
  verbs: [get, list, patch]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: chaosmesh-gameday, namespace: bookinfo}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: chaosmesh-gameday}
subjects:
- {kind: ServiceAccount, name: chaosmesh-gameday, namespace: bookinfo}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "chaosmesh:gameday-reader"}
rules:
- {apiGroups: [""], resources: [namespaces], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "chaosmesh:gameday-reader"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "chaosmesh:gameday-reader"}
subjects:
- {kind: ServiceAccount, name: chaosmesh-gameday, namespace: bookinfo}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: gameday-results, namespace: bookinfo}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: gameday-experiments, namespace: bookinfo}
data: {gameday.yaml: "name: bookinfo"}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: bookinfo-gameday, namespace: bookinfo}
spec:
  schedule: "30 10 * * 2"
  timeZone: Europe/Berlin
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 600
  jobTemplate:
    spec:
      backoffLimit: 0
      activeDeadlineSeconds: 3600
      ttlSecondsAfterFinished: 86400
      template:
        spec:
          serviceAccountName: chaosmesh-gameday
          restartPolicy: Never
          securityContext: {runAsNonRoot: true, runAsUser: 65532}
          containers:
          - name: gameday
            image: ghcr.io/example/chaosmesh:1.0
            args: [gameday, run, /gameday/gameday.yaml]
            securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false}
            resources: {requests: {cpu: 100m, memory: 128Mi}}
            volumeMounts:
            - {name: results, mountPath: /results}
            - {name: experiments, mountPath: /gameday}
          volumes:
          - name: results
            persistentVolumeClaim: {claimName: gameday-results}
          - name: experiments
            configMap: {name: gameday-experiments}
---
apiVersion: batch/v1
kind: Job
metadata: {name: bookinfo-gameday-by-hand, namespace: bookinfo}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: gameday, image: "ghcr.io/example/chaosmesh:1.0"}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: bookinfo-gameday, namespace: bookinfo}
spec: {holderIdentity: runner-a, leaseDurationSeconds: 300}
"""


def assert_applied(stdout: str, names: list[str], *, first: str, repeated: set[str]) -> None:
    """kubectl's line per object, in file order: ``first`` for an object met once. An object the
    directory defines twice is created the first time on a first apply, then "configured" when
    the other definition differs or "unchanged" when it is the same."""
    lines = stdout.splitlines()
    assert [line.split(" ")[0] for line in lines] == names
    seen: set[str] = set()
    for line, name in zip(lines, names, strict=True):
        verb = line.split(" ")[1]
        if name in repeated and (name in seen or first != "created"):
            assert verb in ("configured", "unchanged"), line
        else:
            assert verb == first, line
        seen.add(name)


def test_istio_samples_apply_with_validation_on(kubectl: Kubectl, server: ApiServer) -> None:
    done = kubectl("apply", "-n", "default", "-f", str(BOOKINFO))
    assert done.returncode == 0, done.stderr
    names = [
        f"{d['kind'].lower()}.{d['apiVersion'].split('/')[0]}/{d['metadata']['name']}"
        for path in sorted(BOOKINFO.glob("*.yaml"))
        for d in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if d
    ]
    # The directory holds the routing Bookinfo starts from and optional setups (the canary's
    # reviews routing): an object met again is updated, so its lines say "configured".
    repeated = {name for name in names if names.count(name) > 1}
    assert_applied(done.stdout, names, first="created", repeated=repeated)
    assert done.stderr == ""  # no warning: nothing was pruned
    # kubectl asked the server's OpenAPI whether it validates, then let it validate.
    paths = [record.path for record in server.request_log]
    assert "/openapi/v3" in paths
    assert "/openapi/v3/apis/networking.istio.io/v1" in paths
    again = kubectl("apply", "-n", "default", "-f", str(BOOKINFO))
    assert again.returncode == 0, again.stderr
    assert_applied(again.stdout, names, first="unchanged", repeated=repeated)


def test_every_kind_of_a_game_day_applies_lists_and_reapplies(
    kubectl: Kubectl, server: ApiServer
) -> None:
    done = kubectl("apply", "-f", "-", stdin=GAMEDAY)
    assert done.returncode == 0, done.stderr
    assert "cronjob.batch/bookinfo-gameday created" in done.stdout
    listed = kubectl(
        "get", "cronjob,lease,sa,role,rolebinding,pvc,job", "-n", "bookinfo", "-o", "name"
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "cronjob.batch/bookinfo-gameday",
        "lease.coordination.k8s.io/bookinfo-gameday",
        "serviceaccount/chaosmesh-gameday",
        "role.rbac.authorization.k8s.io/chaosmesh-gameday",
        "rolebinding.rbac.authorization.k8s.io/chaosmesh-gameday",
        "persistentvolumeclaim/gameday-results",
        "job.batch/bookinfo-gameday-by-hand",
    ]
    # The columns a cluster shows (server-side printing).
    table = kubectl("get", "cronjob", "-n", "bookinfo")
    assert table.stdout.splitlines()[0].split() == [
        "NAME",
        "SCHEDULE",
        "TIMEZONE",
        "SUSPEND",
        "ACTIVE",
        "LAST",
        "SCHEDULE",
        "AGE",
    ]
    assert table.stdout.splitlines()[1].split()[:6] == [
        "bookinfo-gameday",
        "30",
        "10",
        "*",
        "*",
        "2",
    ]
    assert "Europe/Berlin   False" in table.stdout
    cluster = kubectl("get", "clusterrole,clusterrolebinding", "-o", "name")
    assert cluster.stdout.splitlines() == [
        "clusterrole.rbac.authorization.k8s.io/chaosmesh:gameday-reader",
        "clusterrolebinding.rbac.authorization.k8s.io/chaosmesh:gameday-reader",
    ]
    # A changed schedule, request, mount and volume source: kubectl computes a strategic merge
    # patch from the last apply ($setElementOrder, $patch: delete, $retainKeys), as for a cluster.
    changed = (
        GAMEDAY.replace('"30 10 * * 2"', '"45 10 * * 2"')
        .replace("100m", "200m")
        .replace("mountPath: /gameday", "mountPath: /experiments")
        .replace("persistentVolumeClaim: {claimName: gameday-results}", "emptyDir: {}")
    )
    again = kubectl("apply", "-f", "-", stdin=changed)
    assert again.returncode == 0, again.stderr
    assert "cronjob.batch/bookinfo-gameday configured" in again.stdout
    assert "lease.coordination.k8s.io/bookinfo-gameday unchanged" in again.stdout
    stored = server.get("batch/v1", "CronJob", "bookinfo", "bookinfo-gameday")
    assert stored is not None
    assert stored["spec"]["schedule"] == "45 10 * * 2"
    pod = stored["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["requests"] == {"cpu": "200m", "memory": "128Mi"}
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "results", "mountPath": "/results"},
        {"name": "experiments", "mountPath": "/experiments"},
    ]
    assert pod["volumes"] == [
        {"name": "results", "emptyDir": {}},
        {"name": "experiments", "configMap": {"name": "gameday-experiments"}},
    ]
    assert pod["containers"][0]["args"] == ["gameday", "run", "/gameday/gameday.yaml"]
    assert stored["metadata"]["generation"] == 2


def test_the_projects_deploy_manifests_apply(kubectl: Kubectl) -> None:
    done = kubectl("apply", "-f", str(DEPLOY / "reaper.yaml"))
    assert done.returncode == 0, done.stderr
    assert "cronjob.batch/chaosmesh-reaper created" in done.stdout
    namespace = kubectl("apply", "-f", "-", stdin=GAMEDAY.split("---", maxsplit=1)[0])
    assert namespace.returncode == 0, namespace.stderr
    for manifest in ("reaper-namespaced.yaml", "experimenter-rbac.yaml"):
        done = kubectl("apply", "-n", "bookinfo", "-f", str(DEPLOY / manifest))
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (
            ("concurrencyPolicy: Forbid", "concurencyPolicy: Forbid"),
            'error when creating "STDIN": CronJob in version "v1" cannot be handled as a'
            ' CronJob: strict decoding error: unknown field "spec.concurencyPolicy"',
        ),
        (
            ('"30 10 * * 2"', '"30 25 * * 2"'),
            'The CronJob "bookinfo-gameday" is invalid: spec.schedule: Invalid value:'
            ' "30 25 * * 2": end of range (25) above maximum (23): 25',
        ),
        (
            ("timeZone: Europe/Berlin", "timeZone: Europe/Berln"),
            'The CronJob "bookinfo-gameday" is invalid: spec.timeZone: Invalid value:'
            ' "Europe/Berln": unknown time zone Europe/Berln',
        ),
        (
            ("startingDeadlineSeconds: 600", 'startingDeadlineSeconds: "10m"'),
            "json: cannot unmarshal string into Go struct field"
            " CronJobSpec.spec.startingDeadlineSeconds of type int64",
        ),
        (
            ("verbs: [get, list, patch]", "verbs: []"),
            'The Role "chaosmesh-gameday" is invalid: rules[0].verbs: Required value: verbs must'
            " contain at least one value",
        ),
    ],
    ids=["misspelt-field", "bad-schedule", "bad-time-zone", "wrong-type", "no-verbs"],
)
def test_kubectl_shows_the_servers_refusal_naming_the_field(
    kubectl, server: ApiServer, broken: tuple[str, str], message: str
) -> None:
    done = kubectl("apply", "-f", "-", stdin=GAMEDAY.replace(*broken))
    assert done.returncode == 1
    assert message in done.stderr
    assert "--validate=false" not in done.stderr  # the server judged, not a missing schema
    kind = "Role" if "Role" in message else "CronJob"
    group = "rbac.authorization.k8s.io/v1" if kind == "Role" else "batch/v1"
    assert server.list(group, kind, "bookinfo") == []


def test_a_misspelt_istio_field_is_refused_by_name(kubectl: Kubectl, server: ApiServer) -> None:
    sample = (BOOKINFO / "gateway.yaml").read_text(encoding="utf-8")
    done = kubectl(
        "apply", "-n", "default", "-f", "-", stdin=sample.replace("gateways:", "gateway:")
    )
    assert done.returncode == 1
    assert 'strict decoding error: unknown field "spec.gateway"' in done.stderr
    assert server.list("networking.istio.io/v1", "VirtualService", "default") == []


def test_a_stale_lease_replace_conflicts(kubectl: Kubectl) -> None:
    assert kubectl("apply", "-f", "-", stdin=GAMEDAY).returncode == 0
    read = kubectl("get", "lease", "-n", "bookinfo", "bookinfo-gameday", "-o", "yaml")
    lease = yaml.safe_load(read.stdout)
    taken = kubectl(
        "replace",
        "-f",
        "-",
        stdin=yaml.safe_dump({**lease, "spec": {**lease["spec"], "holderIdentity": "runner-b"}}),
    )
    assert taken.returncode == 0, taken.stderr
    stale = kubectl(
        "replace",
        "-f",
        "-",
        stdin=yaml.safe_dump({**lease, "spec": {**lease["spec"], "holderIdentity": "runner-c"}}),
    )
    assert stale.returncode == 1
    assert (
        'Operation cannot be fulfilled on leases.coordination.k8s.io "bookinfo-gameday": the'
        " object has been modified" in stale.stderr
    )


def test_kubectl_explain_reads_the_published_schemas(kubectl: Kubectl) -> None:
    done = kubectl("explain", "cronjob.spec.timeZone")
    assert done.returncode == 0, done.stderr
    assert "FIELD: timeZone <string>" in done.stdout
    assert "time zone name for the given schedule" in done.stdout
    custom = kubectl("explain", "virtualservice.spec.http.fault.abort")
    assert custom.returncode == 0, custom.stderr
    assert "httpStatus" in custom.stdout


def test_a_protobuf_body_is_refused_as_unsupported_not_misread(kubectl: Kubectl) -> None:
    # `kubectl create namespace` sends protobuf, which the double does not decode.
    done = kubectl("create", "namespace", "bookinfo")
    assert done.returncode == 1
    assert "UnsupportedMediaType" in done.stderr
    assert "application/vnd.kubernetes.protobuf" in done.stderr


SERVICE_ACCOUNT = "system:serviceaccount:bookinfo:chaosmesh-gameday"


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        (("get", "leases", "-n", "bookinfo"), "yes"),
        (("update", "leases.coordination.k8s.io", "-n", "bookinfo"), "yes"),
        (("delete", "leases", "-n", "bookinfo"), "no"),
        (("patch", "virtualservices.networking.istio.io", "-n", "bookinfo"), "yes"),
        (("patch", "virtualservices.networking.istio.io", "-n", "default"), "no"),
        (("get", "namespaces"), "yes"),  # the ClusterRoleBinding
        (("list", "cronjobs.batch", "-n", "bookinfo"), "no"),
    ],
)
def test_kubectl_auth_can_i_answers_from_the_applied_rbac(
    kubectl: Kubectl, question: tuple[str, ...], answer: str
) -> None:
    assert kubectl("apply", "-f", "-", stdin=GAMEDAY).returncode == 0
    done = kubectl("auth", "can-i", *question, f"--as={SERVICE_ACCOUNT}")
    assert done.stdout.strip() == answer, done.stderr
    assert done.returncode == (0 if answer == "yes" else 1)


def test_kubectl_auth_can_i_lists_what_a_service_account_may_do(kubectl: Kubectl) -> None:
    assert kubectl("apply", "-f", "-", stdin=GAMEDAY).returncode == 0
    done = kubectl("auth", "can-i", "--list", "-n", "bookinfo", f"--as={SERVICE_ACCOUNT}")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[1:]]
    assert rows == [
        ["leases.coordination.k8s.io", "[]", "[]", "[get", "create", "update]"],
        ["virtualservices.networking.istio.io", "[]", "[]", "[get", "list", "patch]"],
        ["namespaces", "[]", "[]", "[get]"],
    ]
    # Acting as the service account, kubectl gets exactly that.
    assert kubectl("get", "vs", "-n", "bookinfo", f"--as={SERVICE_ACCOUNT}").returncode == 0
    denied = kubectl("get", "cronjobs", "-n", "bookinfo", f"--as={SERVICE_ACCOUNT}")
    assert denied.returncode == 1
    assert (
        f'cronjobs.batch is forbidden: User "{SERVICE_ACCOUNT}" cannot list resource "cronjobs"'
        ' in API group "batch" in the namespace "bookinfo"'
    ) in denied.stderr


CANARY_SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: reviews-canary, namespace: default}
spec:
  selector: {app: reviews, version: v2}
  ports: [{name: http, port: 9080, targetPort: 9080}]
"""


def test_kubectl_applies_a_service_and_lists_it(kubectl: Kubectl) -> None:
    # A per-version Service, as Flagger creates one: what the dark-launch leak check looks for.
    done = kubectl("apply", "-f", "-", stdin=CANARY_SERVICE)
    assert done.returncode == 0, done.stderr
    assert "service/reviews-canary created" in done.stdout
    again = kubectl("apply", "-f", "-", stdin=CANARY_SERVICE)
    assert "service/reviews-canary unchanged" in again.stdout, again.stdout + again.stderr
    listed = kubectl("get", "svc", "-n", "default", "-o", "name")
    assert listed.stdout.split() == ["service/reviews-canary"], listed.stderr
    table = kubectl("get", "svc", "-n", "default", "-o", "wide").stdout.splitlines()
    assert table[0].split() == [
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "AGE",
        "SELECTOR",
    ]
    assert table[1].split()[:5] == ["reviews-canary", "ClusterIP", "<none>", "<none>", "9080/TCP"]
    assert table[1].split()[-1] == "app=reviews,version=v2"
