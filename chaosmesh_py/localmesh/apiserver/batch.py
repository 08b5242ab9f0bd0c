"""batch/v1 CronJob and Job rules, after pkg/apis/batch/validation and the pod template rules of
pkg/apis/core/validation that a Job's template meets.

Defaults are applied first, as the apiserver does before validating (a CronJob's
concurrencyPolicy Allow, suspend false, history limits 3 and 1; a pod's restartPolicy Always,
which a Job then refuses unless it is OnFailure or Never). On update a Job's template and
completions are immutable.
"""

from __future__ import annotations

from typing import Any

from chaosmesh_py.localmesh.apiserver.builtin_rules import (
    duplicate,
    forbidden,
    invalid,
    label_errors,
    not_found,
    not_supported,
    required,
    spec_of,
)
from chaosmesh_py.localmesh.apiserver.cron import CronError, check_schedule, known_zone
from chaosmesh_py.localmesh.apiserver.errors import FieldError, JsonDict

CONCURRENCY_POLICIES = ["Allow", "Forbid", "Replace"]
JOB_RESTART_POLICIES = ["OnFailure", "Never"]
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
# validation.DNS1035LabelMaxLength (63) - 11: a CronJob's Jobs are named <cronjob>-<minutes>.
CRON_JOB_NAME_MAX = 52


def _nonnegative(spec: JsonDict, path: str, *names: str) -> list[FieldError]:
    return [
        invalid(f"{path}.{name}", spec[name], "must be greater than or equal to 0")
        for name in names
        if isinstance(spec.get(name), int) and spec[name] < 0
    ]


def default_cron_job(obj: JsonDict) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict):
        for name, value in (
            ("concurrencyPolicy", "Allow"),
            ("suspend", False),
            ("successfulJobsHistoryLimit", 3),
            ("failedJobsHistoryLimit", 1),
        ):
            spec.setdefault(name, value)
        template = (spec.get("jobTemplate") or {}).get("spec")
        if isinstance(template, dict):
            _default_job_spec(template)


def default_job(obj: JsonDict) -> None:
    if isinstance(obj.get("spec"), dict):
        _default_job_spec(obj["spec"])


def _default_job_spec(spec: JsonDict) -> None:
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    pod = (spec.get("template") or {}).get("spec")
    if isinstance(pod, dict):
        pod.setdefault("restartPolicy", "Always")
        pod.setdefault("dnsPolicy", "ClusterFirst")
        pod.setdefault("terminationGracePeriodSeconds", 30)
        for container in pod.get("containers") or ():
            if isinstance(container, dict) and container.get("image"):
                latest = ":" not in container["image"].rpartition("/")[2]
                container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")


def _schedule_errors(spec: JsonDict, old_spec: JsonDict | None) -> list[FieldError]:
    schedule = spec.get("schedule")
    if not schedule:
        return [required("spec.schedule")]
    problems = []
    try:
        check_schedule(schedule)
    except CronError as error:
        problems.append(invalid("spec.schedule", schedule, str(error)))
    tz_allowed = old_spec is not None and "TZ" in str(old_spec.get("schedule", ""))
    if tz_allowed and "TZ" in schedule and spec.get("timeZone") is not None:
        why = "cannot use both timeZone field and TZ or CRON_TZ in schedule"
        problems.append(invalid("spec.schedule", schedule, why))
    elif not tz_allowed and "TZ" in schedule:
        why = "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
        problems.append(invalid("spec.schedule", schedule, why))
    return problems


def _time_zone_errors(zone: Any) -> list[FieldError]:
    if zone is None:
        return []
    if zone == "":
        return [invalid("spec.timeZone", zone, "timeZone must be nil or non-empty string")]
    if str(zone).lower() == "local":
        why = "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
        return [invalid("spec.timeZone", zone, why)]
    if not known_zone(str(zone)):
        return [invalid("spec.timeZone", zone, f"unknown time zone {zone}")]
    return []


def cron_job_errors(new: JsonDict, old: JsonDict | None) -> list[FieldError]:
    """ValidateCronJobCreate / ValidateCronJobUpdate."""
    default_cron_job(new)
    problems: list[FieldError] = []
    name = str(new["metadata"].get("name", ""))
    if len(name) > CRON_JOB_NAME_MAX:
        why = f"must be no more than {CRON_JOB_NAME_MAX} characters"
        problems.append(invalid("metadata.name", name, why))
    spec = spec_of(new)
    problems += _schedule_errors(spec, spec_of(old) if old is not None else None)
    problems += _time_zone_errors(spec.get("timeZone"))
    problems += _nonnegative(
        spec,
        "spec",
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    )
    policy = spec.get("concurrencyPolicy")
    if policy not in CONCURRENCY_POLICIES:
        problems.append(not_supported("spec.concurrencyPolicy", policy, CONCURRENCY_POLICIES))
    template = spec.get("jobTemplate")
    if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        problems.append(required("spec.jobTemplate.spec"))
    else:
        problems += _job_spec_errors(template["spec"], "spec.jobTemplate.spec")
    return problems


def job_errors(new: JsonDict, old: JsonDict | None) -> list[FieldError]:
    """ValidateJob / ValidateJobUpdate (template and completions immutable)."""
    default_job(new)
    spec = spec_of(new)
    problems = _job_spec_errors(spec, "spec")
    if old is not None:
        old_spec = spec_of(old)
        for field in ("template", "completions", "selector"):
            if field == "selector" and field not in spec:
                spec[field] = old_spec.get(field)  # the server generated it
            if spec.get(field) != old_spec.get(field):
                problems.append(invalid(f"spec.{field}", spec.get(field), "field is immutable"))
    return problems


def _job_spec_errors(spec: JsonDict, path: str) -> list[FieldError]:
    problems = _nonnegative(
        spec,
        path,
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    )
    template = spec.get("template")
    if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        return [*problems, required(f"{path}.template.spec")]
    pod, pod_path = template["spec"], f"{path}.template.spec"
    restart = pod.get("restartPolicy")
    if restart not in JOB_RESTART_POLICIES:
        problems.append(not_supported(f"{pod_path}.restartPolicy", restart, JOB_RESTART_POLICIES))
    return problems + pod_spec_errors(pod, pod_path)


def pod_spec_errors(pod: JsonDict, path: str) -> list[FieldError]:
    """The pod rules a hand-written or rendered template meets first: containers present and
    named, images given, volumes named once with exactly one source, mounts naming a volume."""
    problems: list[FieldError] = []
    volumes: set[str] = set()
    for index, volume in enumerate(pod.get("volumes") or ()):
        where = f"{path}.volumes[{index}]"
        problems += _unique_name_errors(volume.get("name"), f"{where}.name", volumes)
        sources = [key for key in volume if key != "name"]
        if not sources:
            problems.append(required(where, "must specify a volume type"))
        elif len(sources) > 1:
            problems.append(
                forbidden(f"{where}.{sources[1]}", "may not specify more than 1 volume type")
            )
    containers = pod.get("containers") or []
    if not containers:
        problems.append(required(f"{path}.containers"))
    seen: set[str] = set()
    for group in ("initContainers", "containers"):
        for index, container in enumerate(pod.get(group) or ()):
            problems += _container_errors(container, f"{path}.{group}[{index}]", volumes, seen)
    return problems


def _unique_name_errors(name: Any, field: str, seen: set[str]) -> list[FieldError]:
    """A volume's or container's name: given, a DNS-1123 label, not used before in the pod."""
    if not name:
        return [required(field)]
    problems = label_errors(field, name)
    if name in seen:
        problems.append(duplicate(field, name))
    seen.add(name)
    return problems


def _container_errors(
    container: JsonDict, path: str, volumes: set[str], seen: set[str]
) -> list[FieldError]:
    problems: list[FieldError] = []
    problems += _unique_name_errors(container.get("name"), f"{path}.name", seen)
    if not container.get("image"):
        problems.append(required(f"{path}.image"))
    policy = container.get("imagePullPolicy")
    if policy is not None and policy not in PULL_POLICIES:
        problems.append(not_supported(f"{path}.imagePullPolicy", policy, PULL_POLICIES))
    for index, mount in enumerate(container.get("volumeMounts") or ()):
        where = f"{path}.volumeMounts[{index}]"
        if not mount.get("name"):
            problems.append(required(f"{where}.name"))
        elif mount["name"] not in volumes:
            problems.append(not_found(f"{where}.name", mount["name"]))
        if not mount.get("mountPath"):
            problems.append(required(f"{where}.mountPath"))
    return problems
