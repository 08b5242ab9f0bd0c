"""The torture harness: `chaos run` killed at random moments, then nothing of it may be left.

A trial starts a real `chaos run` of an experiment that makes every form of owned edit: three faults
and three routing edits (route copies: a dark launch, a canary step, a mirror), policy edits (field
overrides: a DestinationRule's connection pool, ratings' retries turned off), an owned
AuthorizationPolicy (through the engine, as tests/engine_activities.py does) and security changes
(``chaosmesh_py.security.actions``: STRICT for the namespace over another team's PeerAuthentication,
an owned DENY policy, the team's RequestAuthentication's jwksUri made unreachable), with the
chaosmesh control and a `remove_faults` rollback. Meanwhile another writer keeps editing the same
objects the way an operator would (labels, annotations, a user route's timeout: JSON patches that
touch nothing of ours), and adds user routes whose names look like chaosmesh's
(`chaosmesh-dash-canary`, and one shaped exactly like a copy) and user annotations that mention
chaosmesh; and a rollout controller (the Argo-like writer of tests/rollout_writers.py) sets the
canary weight of reviews' route every 100-200 ms, writing the whole object back as it read it. At a
random moment the run gets SIGKILL, SIGTERM or SIGINT. After it exits (and, for SIGKILL, after
`chaosmesh rollback --run ID`), nothing owned may be left (no record, route, field or object:
`leftover_faults`), no security object but the other team's, theirs byte for byte as they wrote
them, and every object must equal its original plus the other writers' edits: none of them lost, the
chaosmesh-named user routes and the controller's latest weights included (no weight of ours written
back).

Random moments come from a seeded generator: CHAOSMESH_TORTURE_SEED replays a failing series.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from chaosmesh_py.istio.owner_record import OWNER_ANNOTATION_PREFIX
from chaosmesh_py.kube.client import LOCAL_MESH_CONFIG_MAP, LOCAL_MESH_KEY
from chaosmesh_py.localmesh.apiserver.patch import PatchType
from tests.conftest import NAMESPACE, ROOT, abort_action, leftover_faults, python_activity
from tests.rollout_writers import ArgoLikeWriter

BIN = Path(sys.executable).parent
V1 = "networking.istio.io/v1"
SECURITY = "security.istio.io/v1"
TARGETS = ("ratings", "reviews", "details")
RULE = "reviews"  # the DestinationRule whose connection pool the run overrides
# User routes named like chaosmesh's, the second shaped exactly like a copy: never ours.
USER_ROUTES = (
    {
        "name": "chaosmesh-dash-canary",
        "match": [{"headers": {"x-dash": {"exact": "canary"}}}],
        "route": [{"destination": {"host": "dash"}}],
    },
    {
        "name": "chaosmesh-ops-0123456789ab",
        "match": [{"headers": {"x-ops": {"exact": "1"}}}],
        "route": [{"destination": {"host": "ops"}}],
    },
)
ENGINE = "tests.engine_activities"
TRAFFIC = "chaosmesh_py.traffic.actions"
RESILIENCE = "chaosmesh_py.resilience.actions"
SECURITY_ACTIONS = "chaosmesh_py.security.actions"
# Security objects of "another team", there before every trial: the run overrides the mode of
# their namespace-wide PeerAuthentication (Istio applies the oldest: a second one would change
# nothing) and the jwksUri of their RequestAuthentication; their AuthorizationPolicy stands
# beside the run's own DENY. After the trial each must be byte for byte what they wrote.
TEAM_ISSUER = "https://issuer.team.example"
TEAM_OBJECTS = {
    "PeerAuthentication": {"mtls": {"mode": "PERMISSIVE"}},
    "AuthorizationPolicy": {
        "action": "ALLOW",
        "rules": [{"to": [{"operation": {"methods": ["GET", "POST"]}}]}],
    },
    "RequestAuthentication": {
        "selector": {"matchLabels": {"app": "productpage"}},
        "jwtRules": [{"issuer": TEAM_ISSUER, "jwksUri": f"{TEAM_ISSUER}/jwks.json"}],
    },
}
TEAM_NAME = "team-dash"
# The route the rollout controller steps the canary weight of, and its destinations.
CANARY_SERVICE, CANARY_ROUTE = "reviews", "everyone-to-v1"
CANARY_DESTINATIONS = [
    {"destination": {"host": "reviews", "subset": "v1"}, "weight": 100},
    {"destination": {"host": "reviews", "subset": "v3"}, "weight": 0},
]
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}
SEED = int(os.environ.get("CHAOSMESH_TORTURE_SEED") or time.time_ns() % 100_000)
CONTROL = {"name": "chaosmesh", "provider": {"type": "python", "module": "chaosmesh_py.control"}}


def experiment(run_id: str) -> dict:
    def delay(name, virtual_service, fixed_delay, **arguments):
        return python_activity(
            name,
            "chaosmesh_py.faults.actions",
            "inject_delay",
            virtual_service=virtual_service,
            namespace=NAMESPACE,
            fixed_delay=fixed_delay,
            percentage=100,
            **arguments,
        )

    return {
        "title": "torture",
        "description": "injects three faults; killed at a random moment",
        "configuration": {"chaosmesh_run_id": run_id},
        "controls": [CONTROL],
        "method": [
            delay("delay-ratings", "ratings", "5s", headers={"end-user": "jason"}),
            abort_action("abort-reviews", "reviews"),
            python_activity(
                "dark-launch-v3-for-testers",
                TRAFFIC,
                "route_to_version",
                subset="v3",
                virtual_service=CANARY_SERVICE,
                namespace=NAMESPACE,
                route_name=CANARY_ROUTE,
                headers={"end-user": "tester"},
            ),
            python_activity(
                "canary-step",
                TRAFFIC,
                "shift_traffic",
                weights={"v1": 80, "v3": 20},
                virtual_service=CANARY_SERVICE,
                namespace=NAMESPACE,
                route_name=CANARY_ROUTE,
            ),
            python_activity(
                "mirror-to-v2",
                TRAFFIC,
                "mirror_traffic",
                percentage=10,
                subset="v2",
                virtual_service=CANARY_SERVICE,
                namespace=NAMESPACE,
                route_name=CANARY_ROUTE,
            ),
            {
                "type": "action",
                "name": "hold",
                "provider": {"type": "process", "path": "true"},
                "pauses": {"after": 0.5},
            },
            python_activity(
                "tighten-reviews-pool",
                RESILIENCE,
                "set_connection_pool",
                destination_rule=RULE,
                namespace=NAMESPACE,
                connection_pool={"tcp": {"maxConnections": 1}},
            ),
            # Beside the other writer's timeouts on the same routes: another field, both kept.
            python_activity(
                "ratings-retries-off",
                RESILIENCE,
                "set_retries",
                attempts=0,
                virtual_service="ratings",
                namespace=NAMESPACE,
            ),
            python_activity(
                "deny-ratings",
                ENGINE,
                "create_object",
                kind="AuthorizationPolicy",
                namespace=NAMESPACE,
                spec={"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/x"]}}]}]},
            ),
            # Security changes: an override of the team's namespace mode, an owned DENY, an
            # override of the team's jwksUri.
            python_activity(
                "strict-bookinfo",
                SECURITY_ACTIONS,
                "set_mtls_mode",
                mode="STRICT",
                namespace=NAMESPACE,
            ),
            python_activity(
                "deny-admin-paths",
                SECURITY_ACTIONS,
                "deny_requests",
                namespace=NAMESPACE,
                sources={"notNamespaces": [NAMESPACE]},
                paths=["/admin/*"],
            ),
            python_activity(
                "jwks-unreachable",
                SECURITY_ACTIONS,
                "make_jwks_unreachable",
                request_authentication=TEAM_NAME,
                namespace=NAMESPACE,
            ),
            delay("delay-details", "details", "1s"),
        ],
        "rollbacks": [python_activity("remove", "chaosmesh_py.faults.rollbacks", "remove_faults")],
    }


@dataclass
class OtherWriter:
    """Edits the targets as an operator would while the run goes on; remembers its edits."""

    api: object
    edits: int = 0
    last_timeout: dict[str, str] = field(default_factory=dict)
    edited_route: dict[str, str] = field(default_factory=dict)
    routes_added: set[str] = field(default_factory=set)
    notes: dict[str, str] = field(default_factory=dict)
    rule_label: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> OtherWriter:
        self._originals = {
            name: [
                r["name"]
                for r in self.api.get(V1, "VirtualService", NAMESPACE, name)["spec"]["http"]
            ]
            for name in TARGETS
        }
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        # One edit every 0.1 s, in turn: busy enough to race the run's writes now and then.
        turn = 0
        while not self._stop.wait(0.1):
            if turn % (len(TARGETS) + 1) == len(TARGETS):
                self._edit_rule()
            else:
                self._edit(TARGETS[turn % (len(TARGETS) + 1)])
            turn += 1

    def _edit(self, name: str) -> None:
        current = self.api.get(V1, "VirtualService", NAMESPACE, name)
        routes = current["spec"]["http"]
        # The route as the user wrote it, found by its name (never by position: copies come
        # and go before it).
        edited = self._originals[name][0]
        index = next(i for i, r in enumerate(routes) if r["name"] == edited)
        timeout = f"{self.edits % 50 + 1}s"
        note = str(self.edits)
        patch = [
            # Fails (and is retried) if a write moved the route since this read.
            {"op": "test", "path": f"/spec/http/{index}/name", "value": edited},
            {"op": "add", "path": f"/spec/http/{index}/timeout", "value": timeout},
            {"op": "add", "path": "/metadata/labels", "value": {"ops-edit": note}},
            {
                "op": "add",
                "path": "/metadata/annotations",
                "value": {
                    **(current["metadata"].get("annotations") or {}),
                    "chaosmesh-dash/owner": "team-dash",
                    "ops.example.com/chaosmesh-note": note,
                },
            },
        ]
        if name not in self.routes_added:
            patch += [
                {"op": "add", "path": "/spec/http/0", "value": route}
                for route in reversed(USER_ROUTES)
            ]
        if self._patch(V1, "VirtualService", name, patch):
            self.last_timeout[name] = timeout
            self.edited_route[name] = edited
            self.notes[name] = note
            self.routes_added.add(name)

    def _edit_rule(self) -> None:
        label = str(self.edits)
        patch = [{"op": "add", "path": "/metadata/labels", "value": {"ops-edit": label}}]
        if self._patch(V1, "DestinationRule", RULE, patch):
            self.rule_label = label

    def _patch(self, api_version: str, kind: str, name: str, patch: list) -> bool:
        try:
            self.api.patch(
                api_version, kind, NAMESPACE, name, patch, content_type=PatchType.JSON.value
            )
        except Exception:  # a conflict with the run's write: try again next round
            return False
        self.edits += 1
        return True

    def expected(self, name: str, original: dict, controller: ArgoLikeWriter) -> dict:
        """What ``name`` must hold after the trial: its original plus this writer's edits, and
        the rollout controller's latest weights."""
        spec = json.loads(json.dumps(original["spec"]))
        if name in self.last_timeout:
            route = next(r for r in spec["http"] if r["name"] == self.edited_route[name])
            route["timeout"] = self.last_timeout[name]
        if name in self.routes_added:
            spec["http"] = [*json.loads(json.dumps(USER_ROUTES)), *spec["http"]]
        if name == CANARY_SERVICE and controller.last_weights is not None:
            route = next(r for r in spec["http"] if r["name"] == CANARY_ROUTE)
            for destination in route["route"]:
                destination["weight"] = controller.last_weights[
                    destination["destination"]["subset"]
                ]
        return spec


@dataclass
class Trial:
    signal_name: str
    delay_s: float
    faults_at_kill: int
    exit_code: int
    leftovers: list[str]
    mismatches: list[str]
    controller_writes: int = 0
    controller_conflicts: int = 0
    security_at_kill: int = 0  # security objects holding a run's record when the signal went


@dataclass(frozen=True)
class Kill:
    run_id: str
    signal_name: str
    delay_s: float


def run_trial(api, env: dict, tmp_path: Path, kill: Kill) -> Trial:
    """One `chaos run`, signalled after ``kill.delay_s``; the state it leaves, compared."""
    run_id, signal_name = kill.run_id, kill.signal_name
    restore_targets(api)
    team = team_objects(api)
    originals = {name: api.get(V1, "VirtualService", NAMESPACE, name) for name in TARGETS}
    original_rule = api.get(V1, "DestinationRule", NAMESPACE, RULE)
    path = tmp_path / f"{run_id}.json"
    path.write_text(json.dumps(experiment(run_id)))
    controller = ArgoLikeWriter(api.url, NAMESPACE, CANARY_SERVICE, routes=(CANARY_ROUTE,))
    with OtherWriter(api) as writer, controller:
        process = subprocess.Popen(
            [
                BIN / "chaos",
                "--no-version-check",
                "--log-file",
                tmp_path / f"{run_id}.log",
                "run",
                "--journal-path",
                tmp_path / f"{run_id}.journal.json",
                path,
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(kill.delay_s)
        faults_at_kill = sum(1 for left in leftover_faults(api) if OWNER_ANNOTATION_PREFIX in left)
        security_at_kill = sum(
            1
            for kind in TEAM_OBJECTS
            for obj in api.list(SECURITY, kind, NAMESPACE)
            if any(
                k.startswith(OWNER_ANNOTATION_PREFIX)
                for k in obj["metadata"].get("annotations") or {}
            )
        )
        process.send_signal(SIGNALS[signal_name])
        exit_code = process.wait(timeout=90)
        if signal_name == "SIGKILL":
            rollback = subprocess.run(
                [BIN / "chaosmesh", "rollback", "--run", run_id],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert rollback.returncode in (0, 2), rollback.stderr  # 2: killed before any write
    mismatches = []
    for name, original in originals.items():
        now = api.get(V1, "VirtualService", NAMESPACE, name)
        expected = writer.expected(name, original, controller)
        if now["spec"] != expected:
            mismatches.append(f"{name}: spec {now['spec']} != {expected}")
        annotations = now["metadata"].get("annotations") or {}
        if name in writer.notes and annotations != {
            "chaosmesh-dash/owner": "team-dash",
            "ops.example.com/chaosmesh-note": writer.notes[name],
        }:
            mismatches.append(f"{name}: annotations {annotations}")
    rule = api.get(V1, "DestinationRule", NAMESPACE, RULE)
    if rule["spec"] != original_rule["spec"]:
        mismatches.append(f"DestinationRule {RULE}: spec {rule['spec']}")
    if writer.rule_label and rule["metadata"].get("labels") != {"ops-edit": writer.rule_label}:
        mismatches.append(f"DestinationRule {RULE}: labels {rule['metadata'].get('labels')}")
    mismatches += security_mismatches(api, team)
    if controller.errors:
        mismatches.append(f"the rollout controller's writes failed: {controller.errors}")
    return Trial(
        signal_name,
        kill.delay_s,
        faults_at_kill,
        exit_code,
        leftover_faults(api),
        mismatches,
        controller_writes=len(controller.writes),
        controller_conflicts=controller.conflicts,
        security_at_kill=security_at_kill,
    )


def team_objects(api) -> dict[str, str]:
    """The other team's security objects, created once, as they stand before a trial. On a
    local mesh their RequestAuthentication names the mesh's own issuer (its JWKS is served, so
    making it unreachable changes the keys the sidecars hold)."""
    frozen = {}
    mesh = api.get("v1", "ConfigMap", *LOCAL_MESH_CONFIG_MAP)
    for kind, written in TEAM_OBJECTS.items():
        spec = written
        if kind == "RequestAuthentication" and mesh is not None:
            issuer = json.loads(mesh["data"][LOCAL_MESH_KEY])["jwt_issuer"]
            rule = {"issuer": issuer["issuer"], "jwksUri": issuer["jwks_uri"]}
            spec = {**written, "jwtRules": [rule]}
        if api.get(SECURITY, kind, NAMESPACE, TEAM_NAME) is None:
            api.create(
                {
                    "apiVersion": SECURITY,
                    "kind": kind,
                    "metadata": {"name": TEAM_NAME, "namespace": NAMESPACE},
                    "spec": spec,
                }
            )
        frozen[kind] = _unchangeable(api.get(SECURITY, kind, NAMESPACE, TEAM_NAME))
    return frozen


def _unchangeable(obj: dict) -> str:
    """Everything of an object but the server's bookkeeping of writes (resourceVersion,
    generation, managedFields), which an override and its exact restore do bump."""
    bookkeeping = ("resourceVersion", "generation", "managedFields")
    metadata = {k: v for k, v in obj["metadata"].items() if k not in bookkeeping}
    return json.dumps({**obj, "metadata": metadata}, sort_keys=True)


def security_mismatches(api, team: dict[str, str]) -> list[str]:
    """The team's objects as they were; no security object of any run left."""
    found = []
    for kind, before in team.items():
        now = api.get(SECURITY, kind, NAMESPACE, TEAM_NAME)
        if now is None or _unchangeable(now) != before:
            found.append(f"the team's {kind} changed: {now}")
        others = [o["metadata"]["name"] for o in api.list(SECURITY, kind, NAMESPACE)]
        if others != [TEAM_NAME]:
            found.append(f"{kind}s left beside the team's: {others}")
    return found


def restore_targets(api) -> None:
    """Take the previous trial's user routes, annotations and weights away: each trial starts
    the same, the canary route at 100/0."""
    names = {route["name"] for route in USER_ROUTES}
    for name in TARGETS:
        current = api.get(V1, "VirtualService", NAMESPACE, name)
        current["spec"]["http"] = [r for r in current["spec"]["http"] if r["name"] not in names]
        current["metadata"].pop("annotations", None)
        for route in current["spec"]["http"]:
            if name == CANARY_SERVICE and route["name"] == CANARY_ROUTE:
                route["route"] = json.loads(json.dumps(CANARY_DESTINATIONS))
        api.replace(current)


def torture(api, env: dict, tmp_path: Path, trials_per_signal: int) -> list[Trial]:
    # `chaos run` imports tests.engine_activities from the repository root.
    env = {**env, "PYTHONPATH": str(ROOT)}
    rng = random.Random(SEED)
    first_write_s, last_write_s = _write_window(api, env, tmp_path)
    results = []
    for number in range(trials_per_signal):
        for signal_name in SIGNALS:
            # From just before the first write to just after the last: before anything is
            # injected, mid-write, mid-pause, mid-rollback.
            delay_s = rng.uniform(first_write_s - 0.1, last_write_s - 0.05)
            run_id = f"t{SEED}{signal_name[3:].lower()}{number}"
            results.append(run_trial(api, env, tmp_path, Kill(run_id, signal_name, delay_s)))
    return results


def _write_window(api, env: dict, tmp_path: Path) -> tuple[float, float]:
    """From an undisturbed run's start: when it first writes a fault, and when it ends."""
    first_write: list[float] = []

    def owned_write(event) -> None:
        annotations = event.object["metadata"].get("annotations") or {}
        if not first_write and any(k.startswith("fault.chaosmesh.io/") for k in annotations):
            first_write.append(time.monotonic())

    path = tmp_path / "calibrate.json"
    path.write_text(json.dumps(experiment("calibrate")))
    restore_targets(api)
    team_objects(api)
    unsubscribe = api.subscribe(owned_write)
    started = time.monotonic()
    controller = ArgoLikeWriter(api.url, NAMESPACE, CANARY_SERVICE, routes=(CANARY_ROUTE,))
    try:
        with OtherWriter(api), controller:
            subprocess.run(
                [
                    BIN / "chaos",
                    "--no-version-check",
                    "run",
                    "--journal-path",
                    tmp_path / "c.json",
                    path,
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                timeout=90,
                # Exit 1: the control's verdict fails a run with no steady state that hit
                # nothing. What calibration needs is a run that went to its end.
                check=False,
            )
    finally:
        unsubscribe()
    journal = json.loads((tmp_path / "c.json").read_text())
    assert journal["status"] == "completed"
    # Every edit was made beside the writers (the routing edits too), or trials test less.
    failed = [e["activity"]["name"] for e in journal["run"] if e["status"] != "succeeded"]
    assert not failed, f"the undisturbed run's {failed} failed: {journal['run']}"
    assert not leftover_faults(api)
    assert first_write, "the undisturbed run wrote no fault"
    return first_write[0] - started, time.monotonic() - started


def summary(results: list[Trial]) -> str:
    lines = [f"torture seed {SEED}: {len(results)} trials"]
    for name in SIGNALS:
        mine = [t for t in results if t.signal_name == name]
        live = sum(1 for t in mine if t.faults_at_kill)
        left = sum(len(t.leftovers) for t in mine)
        lost = sum(len(t.mismatches) for t in mine)
        lines.append(
            f"  {name}: {len(mine)} trials, {live} killed with faults live, {left} owned "
            f"left, {lost} user edits lost"
        )
    writes = sum(t.controller_writes for t in results)
    conflicts = sum(t.controller_conflicts for t in results)
    lines.append(f"  the rollout controller: {writes} weight writes, {conflicts} met a 409")
    security = sum(1 for t in results if t.security_at_kill)
    lines.append(f"  {security} trial(s) killed with security changes in place")
    return "\n".join(lines)
