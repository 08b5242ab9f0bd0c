"""Owned policy edits: a route's timeout or retries, a DestinationRule's connection pool or
outlier detection, set for the run and restored exactly.

Each edit is one field override per targeted route or rule (``chaosmesh_py.engine.ownership.
override_field``: the owner record names the field, the value written and the value replaced, in
the same write; the ledger has the intent first; the write carries the resourceVersion, a 409
is re-read and re-planned). The field is the whole object Istio validates as a unit:
``http[].timeout``, ``http[].retries`` (attempts, perTryTimeout, retryOn together: ``attempts:
0`` forbids the others), ``trafficPolicy.connectionPool``, ``trafficPolicy.outlierDetection``
(top level or a subset's). What the action gives is what the field holds during the run; the
rest of the object is never touched.

Restoring (the control, ``restore_policies``, rollback, reap, halt) puts the replaced value back
only where the field still holds ours; another writer's later value of the same field stays and
is reported as a conflict, their changes to other fields (and to other routes) are kept.

Checks before any write: the arguments alone (``prepare_route`` / ``prepare_rule``, no request),
then the cluster (the VirtualService or DestinationRule exists, the routes and subset are
there). No DestinationRule is created when a host has none: Istio applies one DestinationRule
per host (the oldest, merged across namespaces only in part), so a new one would change
load balancing, TLS and subsets for every caller of the host, which no rollback of a policy edit
could be trusted to undo.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from chaosmesh_py import checks
from chaosmesh_py.engine import ownership, redaction, verify
from chaosmesh_py.engine.access import Access, on
from chaosmesh_py.engine.kinds import FIELD_OVERRIDE, edit_verbs, editable_kinds
from chaosmesh_py.engine.run import Run, run_for
from chaosmesh_py.errors import InvalidInput, NotFound, OwnedByAnotherRun, TargetNotFound, shown
from chaosmesh_py.faults import injection
from chaosmesh_py.istio import field_override, narrowing, policy_target, routing, validation
from chaosmesh_py.istio.owner_record import ABSENT, FieldRecord, path_text, record_of, records
from chaosmesh_py.kube import Kube, ResourceKind, ResourceRef, names
from chaosmesh_py.resilience import policy_effect

# Retries beyond this are a retry storm by themselves: Istio takes up to 2^31-1, this refuses.
MAX_ATTEMPTS = 100


# ----------------------------------------------------------------- arguments (no request)


@dataclass(frozen=True)
class RouteEdit:
    """A route policy edit's arguments, checked: where, which routes, which field, the value."""

    settings: injection.Settings
    target: injection.Target
    route_name: str | None
    route_index: int | None
    field: str  # policy_target.TIMEOUT or RETRIES
    value: Any
    allow_other_runs: bool
    verify_url: str | None


@dataclass(frozen=True)
class RuleEdit:
    """A DestinationRule policy edit's arguments, checked."""

    settings: injection.Settings
    namespace: str
    destination_rule: str | None
    host: str | None
    subset: str | None
    field: str  # policy_target.CONNECTION_POOL or OUTLIER_DETECTION
    value: Any
    allow_other_runs: bool


def parse_timeout(value: object) -> str:
    """A route timeout: an Istio duration of at least 1ms."""
    if isinstance(value, str) and value.strip() in ("0", "0s", "0ms"):
        raise InvalidInput(
            "timeout",
            f"{shown(value)} is zero: Istio refuses a route timeout under 1ms",
            "a route without a timeout already waits for ever (Istio's default); give the "
            'time callers should wait, e.g. "0.5s"',
        )
    if isinstance(value, str) and value.strip().startswith("-"):
        raise InvalidInput("timeout", f"{shown(value)} is negative", 'e.g. "0.5s" or "3s"')
    if not isinstance(value, str):
        raise InvalidInput(
            "timeout",
            f"must be a duration string, got {type(value).__name__} {shown(value)}",
            'e.g. "0.5s" or "3s"',
        )
    _refuse(validation.duration_errors(value, "timeout"))
    return value


def parse_retries(attempts: object, per_try_timeout: object, retry_on: object) -> dict[str, Any]:
    """An Istio HTTPRetry: ``{"attempts": 0}`` turns retries off (Istio's implicit two included)."""
    attempts = checks.whole(
        "attempts",
        attempts,
        0,
        MAX_ATTEMPTS,
        fix="0 turns retries off; a few (2-5) is what services use",
    )
    retries: dict[str, Any] = {"attempts": attempts}
    if per_try_timeout is not None:
        if attempts == 0:
            raise InvalidInput(
                "per_try_timeout",
                "is set while attempts is 0 (retries off): there is no try to time",
                "leave per_try_timeout out, or set attempts",
            )
        _refuse(validation.duration_errors(per_try_timeout, "per_try_timeout"))
        retries["perTryTimeout"] = per_try_timeout
    if retry_on is not None:
        if attempts == 0:
            raise InvalidInput(
                "retry_on",
                "is set while attempts is 0 (retries off): nothing is retried",
                "leave retry_on out, or set attempts",
            )
        retries["retryOn"] = _retry_on(retry_on)
    _refuse(validation.retries_errors(retries, "retries"))
    return retries


def _retry_on(value: object) -> str:
    """Istio's comma-separated retryOn, from that string or a list of conditions."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise InvalidInput(
            "retry_on",
            f"must be retry conditions, got {shown(value)}",
            'e.g. "5xx,connect-failure" or ["gateway-error", "503"]',
        )
    conditions = []
    for item in items:
        text = str(item).strip() if isinstance(item, str | int) else item
        if not isinstance(text, str) or not text or isinstance(item, bool):
            raise InvalidInput("retry_on", f"{shown(item)} is not a retry condition")
        errors = validation.retries_errors({"attempts": 1, "retryOn": text}, "retry_on")
        if errors:
            raise InvalidInput(
                "retry_on",
                f"{text!r} is not a retry condition Istio knows",
                f"use HTTP statuses or: {', '.join(sorted(validation.RETRY_ON_POLICIES))}",
            )
        conditions.append(text)
    return ",".join(conditions)


def parse_connection_pool(value: object) -> dict[str, Any]:
    """Istio's ConnectionPoolSettings; every limit at least 1 (0 means "no limit" to Istio)."""
    if not isinstance(value, dict) or not value:
        raise InvalidInput(
            "connection_pool",
            f"must be Istio's connection pool settings, got {shown(value)}",
            'e.g. {"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}}',
        )
    _refuse(validation.connection_pool_errors(value, "connection_pool"))
    for section, fields in validation.CONNECTION_POOL_LIMITS.items():
        for name in fields:
            if (value.get(section) or {}).get(name) == 0:
                raise InvalidInput(
                    f"connection_pool.{section}.{name}",
                    "0 means no limit to Istio, not a limit of 0",
                    "leave it out for no limit; 1 is the tightest limit",
                )
    return value


def parse_outlier_detection(value: object) -> dict[str, Any]:
    """Istio's OutlierDetection."""
    if not isinstance(value, dict) or not value:
        raise InvalidInput(
            "outlier_detection",
            f"must be Istio's outlier detection settings, got {shown(value)}",
            'e.g. {"consecutive5xxErrors": 1, "interval": "1s", "baseEjectionTime": "3m", '
            '"maxEjectionPercent": 100}',
        )
    _refuse(validation.outlier_detection_errors(value, "outlier_detection"))
    return value


def _refuse(errors: list[str]) -> None:
    """The first of Istio's objections as InvalidInput naming its field."""
    if errors:
        field_name, _, problem = errors[0].partition(": ")
        raise InvalidInput(field_name, problem or errors[0])


def _common(arguments: Mapping[str, Any]) -> tuple[injection.Settings, bool]:
    settings = injection.Settings.from_configuration(arguments["configuration"])
    return settings, checks.flag("allow_other_runs", arguments["allow_other_runs"])


def prepare_route(field: str, arguments: Mapping[str, Any]) -> RouteEdit:
    """Every check of a route policy edit that needs no request: the configuration, the value,
    then the target (as faults: namespace, virtual_service / host, route_name / route_index)."""
    settings, allow_other_runs = _common(arguments)
    if field == policy_target.TIMEOUT:
        value: Any = parse_timeout(arguments["timeout"])
    else:
        value = parse_retries(
            arguments["attempts"], arguments["per_try_timeout"], arguments["retry_on"]
        )
    target = injection.parse_target(
        arguments["namespace"], arguments["virtual_service"], arguments["host"], settings
    )
    route_name, route_index = narrowing.parse_route_choice(
        arguments["route_name"], arguments["route_index"]
    )
    verify_url = injection.parse_verify_url(arguments["verify_url"])
    return RouteEdit(
        settings, target, route_name, route_index, field, value, allow_other_runs, verify_url
    )


def prepare_rule(field: str, arguments: Mapping[str, Any]) -> RuleEdit:
    """Every check of a DestinationRule policy edit that needs no request."""
    settings, allow_other_runs = _common(arguments)
    if field == policy_target.CONNECTION_POOL:
        value = parse_connection_pool(arguments["connection_pool"])
    else:
        value = parse_outlier_detection(arguments["outlier_detection"])
    # The namespace rules (protected namespaces, the allowed list) are the faults'.
    namespace = injection.allowed_namespace(arguments["namespace"], settings)
    rule, host = arguments["destination_rule"], arguments["host"]
    if (rule is None) == (host is None):
        raise InvalidInput(
            "destination_rule/host",
            "give exactly one of them",
            'e.g. destination_rule: "reviews", or host: "reviews"',
        )
    if rule is not None:
        rule = _parse_name(rule, "destination_rule")
    host = routing.parse_host(host, "host")
    subset = arguments["subset"]
    if subset is not None:
        subset = routing.parse_subset(subset)
    return RuleEdit(settings, namespace, rule, host, subset, field, value, allow_other_runs)


def _parse_name(value: object, field_name: str) -> str:
    if not names.is_resource_name(value):
        raise InvalidInput(field_name, f"{shown(value)} is not a resource name", 'e.g. "reviews"')
    assert isinstance(value, str)
    return value


# ------------------------------------------------------------------------ the writes


def rule_kind(settings: injection.Settings) -> ResourceKind:
    version = settings.kind.version
    return next(k.kind for k in editable_kinds(version) if k.kind.kind == "DestinationRule")


def set_route_policy(field: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """set_route_timeout / set_retries: checks, one field override per route, the effect."""
    redaction.remember(arguments["secrets"])
    edit = prepare_route(field, arguments)
    kube = Kube.connect(arguments["secrets"])
    ref = injection.resolve(kube, edit.target, edit.settings.kind)
    try:
        current = kube.read(ref)
    except NotFound as error:
        raise injection.not_found(kube, ref) from error
    targets = policy_target.route_targets(current, edit.route_name, edit.route_index)
    run = run_for(arguments["configuration"])
    _refuse_other_runs(current, run.run_id, edit.allow_other_runs)
    written = [
        _override(kube, ref, run, target.path(field), value=edit.value, settings=edit.settings)
        for target in targets
    ]
    report = _report(run, ref, written)
    report["routes"] = [t.label for t in targets]
    with _restored_unless_seen(kube, ref, run):
        report["effect"] = policy_effect.verify_routes(
            kube,
            ref,
            [(t.route, t.label) for t in targets],
            field,
            edit.value,
            timeout_s=edit.settings.verify_timeout_s,
            verify_url=edit.verify_url,
        )
    return report


def set_rule_policy(field: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """set_connection_pool / set_outlier_detection: checks, the field override, the effect."""
    redaction.remember(arguments["secrets"])
    edit = prepare_rule(field, arguments)
    kube = Kube.connect(arguments["secrets"])
    ref, current = _find_rule(kube, edit)
    if edit.subset is not None and edit.subset not in policy_target.subset_names(current):
        raise TargetNotFound(
            "subset",
            f"DestinationRule {ref.namespace}/{ref.name} has no subset {edit.subset!r}",
            f"its subsets: {', '.join(policy_target.subset_names(current)) or '(none)'}",
        )
    run = run_for(arguments["configuration"])
    _refuse_other_runs(current, run.run_id, edit.allow_other_runs)
    path = policy_target.policy_path(field, edit.subset)
    report = _report(
        run, ref, [_override(kube, ref, run, path, value=edit.value, settings=edit.settings)]
    )
    report["host"] = str(current.get("spec", {}).get("host", ""))
    if edit.subset is not None:
        report["subset"] = edit.subset
    with _restored_unless_seen(kube, ref, run):
        report["effect"] = policy_effect.verify_rule(
            kube,
            ref,
            edit.subset,
            field,
            edit.value,
            timeout_s=edit.settings.verify_timeout_s,
        )
    return report


@contextmanager
def _restored_unless_seen(kube: Kube, ref: ResourceRef, run: Run) -> Iterator[None]:
    """An edit the data plane never shows is taken back (the run's policy edits of the object)
    before the error is raised: an experiment must not go on believing it."""
    try:
        yield
    except verify.FaultNotObserved:
        ownership.release(kube, ref, run.run_id, run_ledger=run.ledger, only_fields=True)
        raise


def _override(
    kube: Kube,
    ref: ResourceRef,
    run: Run,
    path: tuple[Any, ...],
    *,
    value: Any,
    settings: injection.Settings,
) -> dict[str, Any]:
    return ownership.override_field(
        kube, ref, run, path=path, value=value, expires_at=injection.expiry(settings)
    )


def _report(run: Run, ref: ResourceRef, written: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "resource": f"{ref.namespace}/{ref.name}",
        "kind": ref.kind.kind,
        "fields": [
            {"field": w["field"], "wrote": w["wrote"], "replaced": w.get("replaced")}
            for w in written
        ],
        "expires": written[0]["expires"] if written else None,
        "api_attempts": sum(w["api_attempts"] for w in written),
    }


def _refuse_other_runs(resource: Mapping[str, Any], run_id: str, allowed: bool) -> None:
    others = sorted({r.run_id for r in records(resource) if r.run_id != run_id})
    if others and not allowed:
        metadata = resource.get("metadata", {})
        raise OwnedByAnotherRun(
            f"{resource.get('kind')} {metadata.get('namespace')}/{metadata.get('name')} carries "
            f"edits of run(s) {', '.join(others)}; wait for them to end, or set "
            "allow_other_runs (two runs never hold the same field either way)"
        )


def _find_rule(kube: Kube, edit: RuleEdit) -> tuple[ResourceRef, dict[str, Any]]:
    kind = rule_kind(edit.settings)
    candidates: list[dict[str, Any]] | None = None
    if edit.destination_rule is not None:
        ref = ResourceRef(kind, edit.namespace, edit.destination_rule)
        try:
            return ref, kube.read(ref)
        except NotFound:
            candidates = _listed(kube, kind, edit.namespace)
            raise TargetNotFound(
                "destination_rule",
                f"no DestinationRule {edit.destination_rule!r} in namespace {edit.namespace!r}",
                f"existing: {_listing(candidates)}",
            ) from None
    assert edit.host is not None
    candidates = _listed(kube, kind, edit.namespace)
    wanted = routing.qualified(edit.host, edit.namespace)
    serving = [
        r
        for r in candidates
        if routing.qualified(str(r.get("spec", {}).get("host", "")), edit.namespace) == wanted
    ]
    if not serving:
        raise TargetNotFound(
            "host",
            f"no DestinationRule in namespace {edit.namespace!r} is for host {edit.host!r}; "
            "chaosmesh does not create one (it would replace the host's traffic policy, TLS "
            "and subsets for every caller)",
            f"create one in the experiment's setup; existing: {_listing(candidates)}",
        )
    if len(serving) > 1:
        found = ", ".join(r["metadata"]["name"] for r in serving)
        raise InvalidInput(
            "host", f"{edit.host!r} has several DestinationRules ({found})", "name one"
        )
    return ResourceRef(kind, edit.namespace, serving[0]["metadata"]["name"]), serving[0]


def _listed(kube: Kube, kind: ResourceKind, namespace: str) -> list[dict[str, Any]]:
    try:
        return kube.list(kind, namespace)
    except NotFound:
        return []


def _listing(rules: list[dict[str, Any]]) -> str:
    return (
        ", ".join(
            f"{r['metadata']['name']} (host {r.get('spec', {}).get('host', '?')})" for r in rules
        )
        or "(none)"
    )


# ------------------------------------------------------------------------- restoring


def restore(
    virtual_service: object,
    destination_rule: object,
    namespace: object,
    configuration: Mapping[str, Any] | None,
    secrets: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """This run's policy edits on the object named (or, with neither name, on every object the
    run wrote to) restored now; its route copies there stay (faults, routing edits)."""
    settings = injection.Settings.from_configuration(configuration)
    run = run_for(configuration)
    if virtual_service is not None and destination_rule is not None:
        raise InvalidInput(
            "virtual_service/destination_rule", "give one of them, or neither (every object)"
        )
    if virtual_service is None and destination_rule is None:
        refs = run.touched()
    else:
        checked = injection.allowed_namespace(namespace, settings)
        if virtual_service is not None:
            kind = settings.kind
            name = _parse_name(virtual_service, "virtual_service")
        else:
            kind = rule_kind(settings)
            name = _parse_name(destination_rule, "destination_rule")
        refs = [(Kube.connect(secrets), ResourceRef(kind, checked, name))]
    restored = []
    for kube, ref in refs:
        if ref.kind.kind not in ("VirtualService", "DestinationRule"):
            continue
        try:
            held = record_of(kube.read(ref), run.run_id)
        except NotFound:
            held = None
        released = ownership.release(kube, ref, run.run_id, run_ledger=run.ledger, only_fields=True)
        entry: dict[str, Any] = {
            "resource": f"{ref.namespace}/{ref.name}",
            "kind": ref.kind.kind,
            "restored": released.fields,
            "what": {f: released.described.get(f, "") for f in released.fields},
            "conflicts": released.conflicts,
        }
        if released.gone:
            entry["gone"] = True
        if released.final is not None:
            run.remember_after(kube, ref, released.final.get("spec"))
            back = [
                f for f in (held.fields if held else ()) if path_text(f.path) in entry["restored"]
            ]
            if back:
                entry["effect"] = _restored_effect(
                    kube, ref, released.final, back, settings.verify_timeout_s
                )
        restored.append(entry)
    return {"run_id": run.run_id, "restored": restored}


def _restored_effect(
    kube: Kube,
    ref: ResourceRef,
    final: Mapping[str, Any],
    fields: list[FieldRecord],
    timeout_s: float,
) -> dict[str, Any]:
    """Wait until Envoy holds again what each restored field had before the run (unset: what
    Istio does without it; a subset's policy unset: the rule's own)."""
    effects = []
    for held in fields:
        path = held.path
        value = None if held.replaced is ABSENT else held.replaced
        if path[:2] == ("spec", "http"):
            route = field_override.read_at(final, path[:-1])
            if route is ABSENT:
                continue  # the route itself is gone: nothing of it to see in Envoy
            label = str(route.get("name") or path_text(path[:-1]))
            effects.append(
                policy_effect.verify_routes(
                    kube,
                    ref,
                    [(route, label)],
                    str(path[-1]),
                    value,
                    timeout_s=timeout_s,
                    verify_url=None,
                )
            )
            continue
        subset = str(path[2]["name"]) if path[1] == "subsets" else None  # type: ignore[index]
        if value is None and subset is not None:
            inherited = field_override.read_at(final, policy_target.policy_path(str(path[-1])))
            value = None if inherited is ABSENT else inherited
        effects.append(
            policy_effect.verify_rule(kube, ref, subset, str(path[-1]), value, timeout_s=timeout_s)
        )
    return policy_effect.combined(effects)


# ------------------------------------------------------------------------- RBAC


def route_needs(arguments: Mapping[str, Any]) -> list[Access]:
    """A route policy edit reads and patches the VirtualService (by host: lists them first)."""
    return injection.target_needs(arguments, edit_verbs(FIELD_OVERRIDE))


def rule_needs(arguments: Mapping[str, Any]) -> list[Access]:
    """A DestinationRule policy edit reads and patches the rule (by host: lists them first)."""
    kind = rule_kind(injection.Settings.from_configuration(arguments.get("configuration")))
    namespace = str(arguments["namespace"])
    name = arguments.get("destination_rule")
    verbs = edit_verbs(FIELD_OVERRIDE)
    if name is None:
        return on(kind, ["list"], namespace) + on(kind, verbs, namespace)
    return on(kind, verbs, namespace, str(name))


def restore_needs(arguments: Mapping[str, Any]) -> list[Access]:
    """Restoring reads and patches the object named; with none, what the run's edits wrote to
    (their own needs cover it)."""
    settings = injection.Settings.from_configuration(arguments.get("configuration"))
    if arguments.get("virtual_service") is not None:
        kind, name = settings.kind, arguments["virtual_service"]
    elif arguments.get("destination_rule") is not None:
        kind, name = rule_kind(settings), arguments["destination_rule"]
    else:
        return []
    return on(kind, edit_verbs(FIELD_OVERRIDE), str(arguments["namespace"]), str(name))
