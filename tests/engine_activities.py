"""Chaos Toolkit activities over the engine's field-override and owned-object forms, for tests:
what a capability (issues 10-12) will offer, reduced to the engine calls it will make.

Importable by `chaos run` from the repository root with PYTHONPATH set to it (tests/torture.py).
"""

from chaosmesh_py.engine import ownership
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.engine.kinds import editable_kinds
from chaosmesh_py.engine.run import run_for
from chaosmesh_py.faults.injection import Settings, expiry
from chaosmesh_py.istio import field_override
from chaosmesh_py.kube import Kube, ResourceKind, ResourceRef

__all__ = ["create_object", "override_field"]


def kind_named(kind: str) -> ResourceKind:
    return next(k.kind for k in editable_kinds() if k.kind.kind == kind)


def override_field(
    kind: str,
    object_name: str,
    namespace: str,
    path: list,
    value: object,
    configuration: dict = None,
    secrets: dict = None,
) -> dict:
    """Set one field of an existing object, remembering what it replaced."""
    with boundary():
        run = run_for(configuration)
        return ownership.override_field(
            Kube.connect(secrets),
            ResourceRef(kind_named(kind), namespace, object_name),
            run,
            path=field_override.parse_path(path),
            value=value,
            expires_at=expiry(Settings.from_configuration(configuration)),
        )


def create_object(
    kind: str, namespace: str, spec: dict, configuration: dict = None, secrets: dict = None
) -> dict:
    """Create an object owned by the run."""
    with boundary():
        return ownership.create_object(
            Kube.connect(secrets),
            run_for(configuration),
            kind=kind_named(kind),
            namespace=namespace,
            spec=spec,
            expires_at=expiry(Settings.from_configuration(configuration)),
        )
