"""The least RBAC a game day needs, derived from the activities its experiments use.

Every Python activity of the experiments is looked up where it declares what it asks of the
Kubernetes API: chaosmesh's own next to their functions (``@needs``,
``chaosmesh_py.engine.access``), chaostoolkit-kubernetes' probes in ``CHAOSK8S`` below (read
from their source), the runner's own Lease and state ConfigMap in ``runner_needs``. Arguments
are read as Chaos Toolkit would pass them: the function's defaults filled in and the
experiment's configuration substituted (a value from the environment takes what the pod is given,
``render --env NAME=VALUE``, else its default). An activity whose needs are not
known is refused, naming it: nothing is ever granted by wildcard.

The grants are then grouped as RBAC wants them: one Role per namespace the requests stay in
(bound to the game day's ServiceAccount from there), and a ClusterRole only for requests that
span every namespace, each rule with the activities that need it.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosmesh_py import experiment as experiments
from chaosmesh_py.engine.access import Access, Needs, declared, on
from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.gameday.lease import lease_name
from chaosmesh_py.gameday.state import state_name
from chaosmesh_py.gameday.suite import GameDay
from chaosmesh_py.kube import CONFIG_MAP, LEASE, names

# The verbs in the order RBAC documentation lists them (the output's order).
VERB_ORDER = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


def _list_in_ns(group: str, resource: str) -> Needs:
    return lambda arguments: [Access("list", group, resource, str(arguments["ns"]))]


def _list_and_delete_in_ns(group: str, resource: str) -> Needs:
    return lambda arguments: [
        Access(verb, group, resource, str(arguments["ns"])) for verb in ("list", "delete")
    ]


# chaostoolkit-kubernetes activities whose requests are known, from their source: the probes
# call `list_namespaced_<kind>(ns, ...)` and nothing else, terminate_pods lists the pods of `ns`
# and deletes those it picks (tests/unit/test_gameday_render.py reads the installed source and
# holds this table to it). Others are refused until added here.
CHAOSK8S: dict[str, Needs] = {
    "chaosk8s.pod.actions.terminate_pods": _list_and_delete_in_ns("", "pods"),
    "chaosk8s.pod.probes.pods_in_phase": _list_in_ns("", "pods"),
    "chaosk8s.pod.probes.pods_in_conditions": _list_in_ns("", "pods"),
    "chaosk8s.pod.probes.pods_not_in_phase": _list_in_ns("", "pods"),
    "chaosk8s.pod.probes.count_pods": _list_in_ns("", "pods"),
    "chaosk8s.pod.probes.pod_is_not_available": _list_in_ns("", "pods"),
    "chaosk8s.deployment.probes.deployment_available_and_healthy": _list_in_ns(
        "apps", "deployments"
    ),
    "chaosk8s.deployment.probes.deployment_partially_available": _list_in_ns("apps", "deployments"),
    "chaosk8s.service.probes.service_is_initialized": _list_in_ns("", "services"),
}

RUNNER = "the game-day runner (chaosmesh gameday run)"


def runner_needs(gameday: GameDay) -> list[Access]:
    """What ``chaosmesh gameday run`` itself asks of the API, in the game day's namespace: its
    Lease (``lease``: one runner at a time) and its state ConfigMap (``state``: pause, slot
    history), each created when absent, then read and merge-patched. Kubernetes cannot limit
    create to a name (the name is in the body, not the URL), so create is granted on the
    kind, get and patch on the one object."""
    namespace = gameday.namespace
    found = []
    for kind, name in ((LEASE, lease_name(gameday.name)), (CONFIG_MAP, state_name(gameday.name))):
        found += on(kind, ["create"], namespace) + on(kind, ["get", "patch"], namespace, name)
    return found


@dataclass(frozen=True)
class Rule:
    """One RBAC rule, and who needs it (for the comment above it in the output)."""

    group: str
    resource: str
    verbs: tuple[str, ...]
    names: tuple[str, ...] = ()
    needed_by: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        rule: dict[str, Any] = {
            "apiGroups": [self.group],
            "resources": [self.resource],
            "verbs": list(self.verbs),
        }
        if self.names:
            rule["resourceNames"] = list(self.names)
        return rule


@dataclass(frozen=True)
class Grants:
    """The rules per namespace (a Role each), and those across all namespaces (a ClusterRole)."""

    namespaced: Mapping[str, tuple[Rule, ...]]
    cluster: tuple[Rule, ...]


def derive(gameday: GameDay, environment: Mapping[str, str] | None = None) -> Grants:
    """The least RBAC that lets the game day's runner and every activity of its experiments
    make the requests they make; InvalidInput for an activity whose needs are unknown."""
    needed_by: dict[Access, set[str]] = {}
    for access in runner_needs(gameday):
        needed_by.setdefault(access, set()).add(RUNNER)
    for step in gameday.experiments:
        for who, access in experiment_needs(step.path, environment or {}):
            needed_by.setdefault(access, set()).add(who)
    return _grouped(_without_subsumed(needed_by))


def experiment_needs(path: Path, environment: Mapping[str, str]) -> Iterator[tuple[str, Access]]:
    """(which activity, what it asks) for every activity of the experiment at ``path``."""
    # What the runner would refuse, refused here: the arguments read below are then sound.
    # Chaos Toolkit reads the configuration from os.environ: the pod's variables, meanwhile.
    with _environment(environment):
        problems = experiments.validation_problems(path)
    if problems:
        raise InvalidInput(
            str(path), problems[0].removeprefix("invalid: "), f"see `chaosmesh validate {path}`"
        )
    document = experiments.load(path)
    configuration = _pod_configuration(document.get("configuration") or {}, path, environment)
    for where, activity in _activities(document):
        who = f"{path.name}: {activity.get('name') or where}"
        provider = activity.get("provider") or {}
        kind = provider.get("type")
        if kind == "http":
            continue  # a URL, never the Kubernetes API through these credentials
        if kind != "python":
            raise InvalidInput(
                f"{path.name}: {where}.provider.type",
                f"a {kind!r} activity ({who}) may do anything with the game day's credentials: "
                "its needs cannot be known",
                "use a Python activity whose needs are declared (chaosmesh's, or the "
                "chaostoolkit-kubernetes probes in chaosmesh_py/gameday/rbac.py)",
            )
        for access in _python_needs(provider, configuration, f"{path.name}: {where}", who):
            _check_names(access, f"{path.name}: {where}.provider.arguments", who)
            yield who, access


def _python_needs(
    provider: Mapping[str, Any], configuration: Mapping[str, Any], field: str, who: str
) -> Iterable[Access]:
    from chaoslib import substitute

    module, func = str(provider.get("module")), str(provider.get("func"))
    qualified = f"{module}.{func}"
    needs = declared(module, func) or CHAOSK8S.get(qualified)
    if needs is None:
        raise InvalidInput(
            f"{field}.provider",
            f"what {qualified} ({who}) asks of the Kubernetes API is not known",
            "use an activity that declares it (chaosmesh's own, or a chaostoolkit-kubernetes "
            "probe listed in chaosmesh_py/gameday/rbac.py): a game day is never granted a "
            "wildcard",
        )
    function = getattr(importlib.import_module(module), func)
    arguments = substitute(provider.get("arguments") or {}, dict(configuration), {})
    try:
        bound = inspect.signature(function).bind_partial(**arguments)
    except TypeError as error:
        raise InvalidInput(
            f"{field}.provider.arguments", f"{qualified}: {error}", "`chaosmesh validate` it"
        ) from error
    bound.apply_defaults()
    try:
        return list(needs({**bound.arguments, "configuration": dict(configuration)}))
    except InvalidInput as error:  # arguments that cannot work in a cluster
        activity = who.partition(": ")[2] or who
        raise InvalidInput(
            f"{field}.provider.arguments.{error.field}", f"{activity}: {error.problem}", error.fix
        ) from error


def _check_names(access: Access, field: str, who: str) -> None:
    """A namespace or object name that is none (e.g. a ``${key}`` the configuration lacks)
    would make a Role no API server accepts."""
    for kind, value, valid in (
        ("namespace", access.namespace, names.is_namespace),
        ("name", access.name, names.is_resource_name),
    ):
        if value is not None and not valid(value):
            raise InvalidInput(
                field,
                f"{who} targets {kind} {value!r}, which is no {kind}",
                "give a plain value, or one from the experiment's configuration",
            )


def _activities(document: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every activity the run may call: the hypothesis, the method, the rollbacks, and the
    probes a control watches (the chaosmesh control's ``guardrails``)."""
    hypothesis = document.get("steady-state-hypothesis") or {}
    sections = [
        ("steady-state-hypothesis.probes", hypothesis.get("probes") or []),
        ("method", document.get("method") or []),
        ("rollbacks", document.get("rollbacks") or []),
    ]
    for index, control in enumerate(document.get("controls") or []):
        arguments = ((control or {}).get("provider") or {}).get("arguments") or {}
        guardrails = arguments.get("guardrails") if isinstance(arguments, dict) else None
        if isinstance(guardrails, list):
            sections.append((f"controls[{index}].provider.arguments.guardrails", guardrails))
    for section, activities in sections:
        for index, activity in enumerate(activities):
            if isinstance(activity, dict) and "ref" not in activity:  # a ref repeats one above
                yield f"{section}[{index}]", activity


@contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _pod_configuration(
    configuration: Mapping[str, Any], path: Path, environment: Mapping[str, str]
) -> dict[str, Any]:
    """The configuration as the CronJob's pod will see it: plain values, and values from the
    environment as the pod is given them (``environment``), else at their default."""
    resolved = {}
    for key, value in configuration.items():
        if isinstance(value, dict) and value.get("type") == "env":
            if value.get("key") in environment:
                resolved[key] = environment[value["key"]]
                continue
            if "default" not in value:
                raise InvalidInput(
                    f"{path.name}: configuration.{key}",
                    f"comes from the environment variable {value.get('key')!r} with no "
                    "default, which the game day's pod is not given",
                    f"give it a default, or render with --env {value.get('key')}=VALUE",
                )
            resolved[key] = value["default"]
        elif isinstance(value, dict) and "type" in value:
            raise InvalidInput(
                f"{path.name}: configuration.{key}",
                f"a {value['type']!r} value is only known when the experiment runs",
                "give it a plain value: the RBAC is derived from it",
            )
        else:
            resolved[key] = value
    return resolved


def _without_subsumed(needed_by: Mapping[Access, set[str]]) -> dict[Access, set[str]]:
    """Fold each request into the widest grant also needed (any name over one name, every
    namespace over one): a rule that adds nothing is not least privilege."""
    kept: dict[Access, set[str]] = {}
    for access, who in needed_by.items():
        widest = next(
            (
                candidate
                for candidate in (
                    Access(access.verb, access.group, access.resource, None),
                    Access(access.verb, access.group, access.resource, access.namespace),
                )
                if candidate in needed_by
            ),
            access,
        )
        kept.setdefault(widest, set()).update(who)
    return kept


def _grouped(needed_by: Mapping[Access, set[str]]) -> Grants:
    by_scope: dict[str | None, dict[tuple[str, str, str | None], dict[str, set[str]]]] = {}
    for access, who in needed_by.items():
        target = by_scope.setdefault(access.namespace, {})
        verbs = target.setdefault((access.group, access.resource, access.name), {})
        verbs.setdefault(access.verb, set()).update(who)
    rules_by_scope: dict[str | None, tuple[Rule, ...]] = {}
    for scope, targets in by_scope.items():
        rules = []
        for (group, resource, name), verbs in sorted(targets.items(), key=_target_order):
            rules.append(
                Rule(
                    group,
                    resource,
                    tuple(v for v in VERB_ORDER if v in verbs),
                    () if name is None else (name,),
                    tuple(sorted(set().union(*verbs.values()))),
                )
            )
        rules_by_scope[scope] = tuple(rules)
    cluster = rules_by_scope.pop(None, ())
    return Grants(
        {ns: rules_by_scope[ns] for ns in sorted(k for k in rules_by_scope if k is not None)},
        cluster,
    )


def _target_order(item: tuple[tuple[str, str, str | None], Any]) -> tuple[str, str, str]:
    (group, resource, name), _ = item
    return (group, resource, name or "")
