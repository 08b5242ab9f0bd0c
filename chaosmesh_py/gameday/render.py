"""``chaosmesh gameday render``: the manifests that run a game day in the cluster.

For the game day's namespace (which must exist; nothing here creates or edits a namespace):

- ``rbac.yaml``: a ServiceAccount, and the least RBAC derived from the activities
  (``chaosmesh_py.gameday.rbac``): a Role and RoleBinding per namespace the requests stay in, a
  ClusterRole only for requests across all namespaces;
- ``files.yaml``: the game-day file, its experiments and the files they reference, in one
  ConfigMap mounted read-only at ``/gameday`` with their relative layout kept (refused above
  the ConfigMap limit of 1 MiB);
- ``results.yaml``: a PersistentVolumeClaim for ``/results`` (not written with
  ``--results-claim``, which names an existing one);
- ``cronjob.yaml``: the CronJob running ``chaosmesh gameday run /gameday/<file> --results
  /results`` in deploy/Dockerfile's image, as its non-root user, with a read-only root.

Executing the CronJob is the cluster's job. Output is deterministic: the same inputs give the
same bytes, so the manifests can live in Git and diff cleanly.
"""

from __future__ import annotations

import itertools
import math
import os
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from chaosmesh_py import __version__
from chaosmesh_py import experiment as experiments
from chaosmesh_py.engine.ledger import LEDGER_DIR_ENV
from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.gameday import environment as environments
from chaosmesh_py.gameday import rbac
from chaosmesh_py.gameday.schedule import fire_times
from chaosmesh_py.gameday.suite import GameDay

# deploy/Dockerfile's user (USER 10001:10001); tests/unit/test_gameday_render.py holds them equal.
IMAGE_UID = 10001
DEFAULT_IMAGE = f"chaosmesh-py:{__version__}"
FILES_MOUNT = "/gameday"
RESULTS_MOUNT = "/results"
# Kubernetes refuses a ConfigMap whose keys and values take more than this (core.MaxSecretSize).
CONFIG_MAP_LIMIT = 1024 * 1024
# A CronJob's name leaves 11 characters for the Jobs' suffix (Kubernetes refuses more than 52).
CRONJOB_NAME_LIMIT = 52

# activeDeadlineSeconds: every pause the experiments and the game day declare, each activity's
# own `timeout` (ACTIVITY_BUDGET_S when it declares none) plus the `duration_s` it is asked to
# load for, one more budget per experiment for the control's rollback, and the schedule's
# jitter; times DEADLINE_FACTOR, plus START_MARGIN_S for pulling the image, starting Python and
# the preflight checks.
ACTIVITY_BUDGET_S = 60.0
DEADLINE_FACTOR = 1.25
START_MARGIN_S = 300.0
# Finished Jobs (and their pods' logs) stay a week: a weekly game day's last run is still there
# when the next one starts. The results themselves are on the volume.
TTL_AFTER_FINISHED_S = 7 * 24 * 3600
RESULTS_SIZE = "1Gi"
TERMINATION_GRACE_S = 60
# Fire times looked at for overlapping runs: a year of a weekly game day, a day of an hourly one.
OVERLAP_LOOKAHEAD = 60

POD_ENVIRONMENT = {
    # Credentials from the pod's ServiceAccount (chaosmesh_py/kube/credentials.py).
    "CHAOSTOOLKIT_IN_POD": "true",
    # The ledger outlives the pod: `chaosmesh rollback --run ID` can finish a run later.
    LEDGER_DIR_ENV: f"{RESULTS_MOUNT}/ledger",
}
HEADER = "# Rendered by `chaosmesh gameday render`; render again rather than edit.\n"
LABEL = "app.kubernetes.io/name"
APP = "chaosmesh-gameday"


@dataclass(frozen=True)
class Shipped:
    """One file of the ConfigMap: its key and where it appears under /gameday."""

    key: str
    path: PurePosixPath
    content: bytes


@dataclass(frozen=True)
class Shipment:
    files: tuple[Shipped, ...]
    gameday_path: PurePosixPath  # the game-day file's, under /gameday


def render(
    gameday: GameDay,
    image: str | None = None,
    results_claim: str | None = None,
    environment: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """File name -> YAML text, for ``kubectl apply -f DIR``. ``environment``: plain variables
    the pod is given (e.g. the namespace an experiment's configuration reads from one)."""
    environment = dict(environment or {})
    environments.check(gameday, environment, reserved=POD_ENVIRONMENT)
    environments.refuse_secrets_in_clear(gameday)
    if gameday.schedule is None:
        raise InvalidInput(
            "schedule",
            "the game day has none: a CronJob needs one",
            'add e.g. schedule: {cron: "30 10 * * 2", timezone: "Europe/Berlin"}',
        )
    if len(gameday.name) > CRONJOB_NAME_LIMIT:
        raise InvalidInput(
            "name",
            f"{gameday.name!r} is {len(gameday.name)} characters; a CronJob's name may have "
            f"at most {CRONJOB_NAME_LIMIT}",
            "shorten it",
        )
    for index, step in enumerate(gameday.experiments):
        if not step.path.is_file():
            raise InvalidInput(
                f"experiments[{index}].path",
                f"{step.path} is not a file",
                "give the path of an experiment, relative to the game-day file",
            )
    shipped = ship(gameday)
    grants = rbac.derive(gameday, environment)
    files = {
        "rbac.yaml": _documents(_rbac(gameday, grants)),
        "files.yaml": _documents([_files_config_map(gameday, shipped)]),
        "cronjob.yaml": _documents(
            [
                (
                    environments.secret_instructions(gameday, environment),
                    _cronjob(gameday, shipped, image or DEFAULT_IMAGE, results_claim, environment),
                )
            ]
        ),
    }
    if results_claim is None:
        files["results.yaml"] = _documents([_results_claim(gameday)])
    return dict(sorted(files.items()))


def write(files: Mapping[str, str], directory: Path) -> list[Path]:
    """Write the files; a results.yaml an earlier render left is removed when this one names
    an existing claim instead (applying the directory would create a claim nobody uses)."""
    directory.mkdir(parents=True, exist_ok=True)
    stale = directory / "results.yaml"
    if "results.yaml" not in files and stale.is_file() and stale.read_text().startswith(HEADER):
        stale.unlink()
    written = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


# --- names ----------------------------------------------------------------------------------


def files_name(gameday: GameDay) -> str:
    # Not the runner's state ConfigMap's (state.state_name).
    return f"{gameday.name}-files"


def results_name(gameday: GameDay) -> str:
    return f"{gameday.name}-results"


def role_name(gameday: GameDay) -> str:
    # Also in the experiments' namespaces, where the game day's own name says little.
    return f"chaosmesh-gameday-{gameday.name}"


def cluster_role_name(gameday: GameDay) -> str:
    # Cluster-wide: the namespace keeps two teams' game days of one name apart.
    return f"chaosmesh-gameday-{gameday.namespace}-{gameday.name}"


# --- the files ------------------------------------------------------------------------------


def ship(gameday: GameDay) -> Shipment:
    """The game-day file, its experiments and the files they reference, laid out under one
    root as they are on disk (experiments are found relative to the game-day file)."""
    paths = {gameday.source.resolve()}
    for step in gameday.experiments:
        paths.add(step.path.resolve())
        paths.update(_referenced(step.path))
    root = Path(os.path.commonpath([p.parent for p in paths]))
    ordered = sorted(paths, key=lambda p: p.relative_to(root).as_posix())
    shipped = [
        Shipped(f"{index:02d}-{_key_safe(path.name)}", _under(root, path), path.read_bytes())
        for index, path in enumerate(ordered, start=1)
    ]
    size = sum(len(s.key.encode()) + len(s.content) for s in shipped)
    if size > CONFIG_MAP_LIMIT:
        largest = sorted(shipped, key=lambda s: -len(s.content))[:3]
        raise InvalidInput(
            "experiments",
            f"the game day's files take {size} bytes; a ConfigMap holds at most "
            f"{CONFIG_MAP_LIMIT} (1 MiB). Largest: "
            + ", ".join(f"{s.path} ({len(s.content)} bytes)" for s in largest),
            "make the large files smaller, or split the game day in two",
        )
    return Shipment(tuple(shipped), _under(root, gameday.source.resolve()))


def _under(root: Path, path: Path) -> PurePosixPath:
    return PurePosixPath(path.relative_to(root).as_posix())


def _referenced(path: Path) -> set[Path]:
    """Files an experiment names in its strings (e.g. a manifest a probe applies), found
    relative to the experiment; others are not shipped (the pod would not have them)."""
    found: set[Path] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and value.endswith((".yaml", ".yml", ".json")):
            candidate = (path.parent / value).resolve()
            if "\n" not in value and candidate.is_file() and candidate != path.resolve():
                found.add(candidate)

    walk(experiments.load(path))
    return found


def _key_safe(name: str) -> str:
    # A ConfigMap key is [-._a-zA-Z0-9]+.
    return "".join(c if c.isascii() and (c.isalnum() or c in "-._") else "_" for c in name)


def _files_config_map(gameday: GameDay, shipped: Shipment) -> dict[str, Any]:
    data, binary = {}, {}
    for item in shipped.files:
        try:
            data[item.key] = item.content.decode("utf-8")
        except UnicodeDecodeError:
            import base64

            binary[item.key] = base64.b64encode(item.content).decode()
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(gameday, files_name(gameday)),
        # Kubernetes refuses any change to it: a new render is a new ConfigMap's content.
        "data": data,
    }
    if binary:
        document["binaryData"] = binary
    return document


# --- the job --------------------------------------------------------------------------------


def active_deadline_s(gameday: GameDay) -> int:
    """How long one game day may run before Kubernetes stops it (see ACTIVITY_BUDGET_S)."""
    assert gameday.schedule is not None
    total = gameday.schedule.jitter_s
    for step in gameday.experiments:
        total += step.pause_after_s + ACTIVITY_BUDGET_S  # the control's rollback
        for activity in _all_activities(experiments.load(step.path)):
            pauses = activity.get("pauses") or {}
            total += sum(_seconds(pauses.get(when)) for when in ("before", "after"))
            timeout = _seconds(activity.get("timeout"))
            total += timeout or ACTIVITY_BUDGET_S
            arguments = (activity.get("provider") or {}).get("arguments") or {}
            total += _seconds(arguments.get("duration_s"))
    return math.ceil(total * DEADLINE_FACTOR + START_MARGIN_S)


def overlap_warning(gameday: GameDay, now: datetime | None = None) -> str | None:
    """Said when a run may last longer than the shortest gap between two fire times in the
    coming year: with concurrencyPolicy Forbid, Kubernetes skips a slot while a run lasts."""
    assert gameday.schedule is not None
    fires = fire_times(gameday.schedule, now or datetime.now(UTC), OVERLAP_LOOKAHEAD)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(fires)]
    deadline = active_deadline_s(gameday)
    if not gaps or deadline <= min(gaps):
        return None
    return (
        f"a run may last up to {deadline} s (activeDeadlineSeconds) but slots can be "
        f"{min(gaps):.0f} s apart: while one runs, the next is skipped (concurrencyPolicy "
        "Forbid); space the schedule out, or shorten the game day"
    )


def _all_activities(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    hypothesis = document.get("steady-state-hypothesis") or {}
    probes = [p for p in hypothesis.get("probes") or [] if isinstance(p, dict)]
    method = [a for a in document.get("method") or [] if isinstance(a, dict)]
    rollbacks = [a for a in document.get("rollbacks") or [] if isinstance(a, dict)]
    # The hypothesis runs before and after the method.
    return [*probes, *probes, *method, *rollbacks]


def _seconds(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _cronjob(
    gameday: GameDay,
    shipped: Shipment,
    image: str,
    results_claim: str | None,
    environment: Mapping[str, str],
) -> dict[str, Any]:
    schedule = gameday.schedule
    assert schedule is not None
    labels = {LABEL: APP, "app.kubernetes.io/instance": gameday.name}
    container = {
        "name": "gameday",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "chaosmesh",
            "gameday",
            "run",
            f"{FILES_MOUNT}/{shipped.gameday_path}",
            "--results",
            RESULTS_MOUNT,
        ],
        "env": [
            *({"name": name, "value": value} for name, value in POD_ENVIRONMENT.items()),
            *({"name": name, "value": value} for name, value in sorted(environment.items())),
            *(
                {
                    "name": name,
                    "valueFrom": {
                        "secretKeyRef": {"name": environments.secret_name(gameday), "key": name}
                    },
                }
                for name in environments.from_secret(gameday, environment)
            ),
        ],
        "resources": {
            "requests": {"cpu": "100m", "memory": "192Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "gameday", "mountPath": FILES_MOUNT, "readOnly": True},
            {"name": "results", "mountPath": RESULTS_MOUNT},
            # The only other writable place: Python's tempfile and the runner's scratch.
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    volumes = [
        {
            "name": "gameday",
            "configMap": {
                "name": files_name(gameday),
                "items": [{"key": s.key, "path": str(s.path)} for s in shipped.files],
                "defaultMode": 0o444,
            },
        },
        {
            "name": "results",
            "persistentVolumeClaim": {"claimName": results_claim or results_name(gameday)},
        },
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _metadata(gameday, gameday.name),
        "spec": {
            "schedule": schedule.cron,
            "timeZone": schedule.timezone,
            # One game day at a time; the runner's Lease also refuses a second runner for a slot.
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": math.ceil(schedule.starting_deadline_s),
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels},
                "spec": {
                    # Never retried by Kubernetes: a second attempt of the same slot is the
                    # runner's to refuse or record, not a silent re-run.
                    "backoffLimit": 0,
                    "activeDeadlineSeconds": active_deadline_s(gameday),
                    "ttlSecondsAfterFinished": TTL_AFTER_FINISHED_S,
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "serviceAccountName": gameday.name,
                            "automountServiceAccountToken": True,
                            "restartPolicy": "Never",
                            # Past the deadline (or when the pod is deleted) the runner gets
                            # SIGTERM and rolls back the running experiment: time for that
                            # before SIGKILL. What a kill leaves expires (deploy/'s reaper).
                            "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
                            "securityContext": {
                                "runAsNonRoot": True,
                                "runAsUser": IMAGE_UID,
                                "runAsGroup": IMAGE_UID,
                                # The results volume is written as this group.
                                "fsGroup": IMAGE_UID,
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "containers": [container],
                            "volumes": volumes,
                        },
                    },
                },
            },
        },
    }


def _results_claim(gameday: GameDay) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(gameday, results_name(gameday)),
        "spec": {
            # One writer at a time (concurrencyPolicy Forbid); the cluster's default class.
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": RESULTS_SIZE}},
        },
    }


# --- RBAC -----------------------------------------------------------------------------------


def _rbac(gameday: GameDay, grants: rbac.Grants) -> list[tuple[list[str], dict[str, Any]]]:
    """(comment lines, document) pairs: the ServiceAccount, then each Role with its binding,
    then the ClusterRole if any."""
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(gameday, gameday.name),
    }
    subject = {"kind": "ServiceAccount", "name": gameday.name, "namespace": gameday.namespace}
    documents: list[tuple[list[str], dict[str, Any]]] = [([], account)]
    for namespace, rules in grants.namespaced.items():
        role = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _metadata(gameday, role_name(gameday), namespace),
            "rules": [r.to_json() for r in rules],
        }
        why = [f"Role in {namespace!r}: what the game day's requests there need, nothing more."]
        documents.append((why + _reasons(rules), role))
        documents.append(([], _binding(gameday, "RoleBinding", namespace, subject)))
    if grants.cluster:
        role = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _metadata(gameday, cluster_role_name(gameday), None),
            "rules": [r.to_json() for r in grants.cluster],
        }
        why = [
            "A ClusterRole, because these requests span every namespace (a Role cannot grant",
            "a request across namespaces):",
        ]
        documents.append((why + _reasons(grants.cluster), role))
        documents.append(([], _binding(gameday, "ClusterRoleBinding", None, subject)))
    return documents


def _reasons(rules: Iterable[rbac.Rule]) -> list[str]:
    """Per rule, who needs it: ``rules[0] get, patch virtualservices 'ratings': file.json
    (activity, activity), ...``, wrapped."""
    lines = []
    for index, rule in enumerate(rules):
        by_file: dict[str, list[str]] = {}
        for who in rule.needed_by:
            source, _, activity = who.partition(": ")
            by_file.setdefault(source, []).extend([activity] if activity else [])
        users = "; ".join(
            f"{source} ({', '.join(activities)})" if activities else source
            for source, activities in by_file.items()
        )
        target = rule.resource + "".join(f" {name!r}" for name in rule.names)
        text = f"rules[{index}] {', '.join(rule.verbs)} {target}: {users}"
        lines += textwrap.wrap(text, width=96, subsequent_indent="    ", break_on_hyphens=False)
    return lines


def _binding(
    gameday: GameDay, kind: str, namespace: str | None, subject: dict[str, str]
) -> dict[str, Any]:
    role_kind = kind.removesuffix("Binding")
    name = role_name(gameday) if namespace is not None else cluster_role_name(gameday)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": _metadata(gameday, name, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
        "subjects": [subject],
    }


# --- YAML -----------------------------------------------------------------------------------


def _metadata(gameday: GameDay, name: str, namespace: str | None = "") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace == "":
        namespace = gameday.namespace
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata["labels"] = {LABEL: APP, "app.kubernetes.io/instance": gameday.name}
    return metadata


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the shipped files) as literal blocks, readable in a diff; no
    anchors and aliases (people read these files)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def _documents(documents: Iterable[dict[str, Any] | tuple[list[str], dict[str, Any]]]) -> str:
    parts = []
    for item in documents:
        comments, document = item if isinstance(item, tuple) else ([], item)
        text = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100)
        parts.append("".join(f"# {line}\n" for line in comments) + text)
    return HEADER + "---\n".join(parts)
