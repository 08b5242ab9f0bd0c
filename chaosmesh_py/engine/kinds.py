"""The kinds chaosmesh may edit, and how: the one list rollback, halt, reap and the RBAC in
``deploy/`` follow.

A capability that edits a new kind (or edits a kind in a new form) adds it here; every clean-up
then visits it, and ``tests/integration/test_deploy.py`` holds the manifests to the verbs it
needs. A kind the API server does not serve (an older Istio, a cluster without the security
CRDs) is skipped: nothing of ours can be there.
"""

from __future__ import annotations

from dataclasses import dataclass

from chaosmesh_py.kube import CONFIG_MAP, ResourceKind

ROUTE_COPY = "route_copy"  # chaosmesh_py.istio.route_copy: a patch
FIELD_OVERRIDE = "field_override"  # chaosmesh_py.istio.field_override: a patch
OWNED_OBJECT = "owned_object"  # chaosmesh_py.istio.owned_object: a create, then a delete

NETWORKING = "networking.istio.io"
SECURITY = "security.istio.io"
# The only ConfigMaps chaosmesh writes: certificate requests to a local mesh
# (chaosmesh_py.security.certificates). Sweeps list ConfigMaps by this label alone, so a reaper
# never reads the data of every ConfigMap in a cluster.
CERTIFICATE_LABEL = "security.chaosmesh.io/certificate"
_SWEEP_SELECTORS = {CONFIG_MAP: f"{CERTIFICATE_LABEL}=true"}


def sweep_selector(kind: ResourceKind) -> str | None:
    """The label selector a sweep (halt, reap) lists ``kind`` with; None: every object."""
    return _SWEEP_SELECTORS.get(kind)


@dataclass(frozen=True)
class EditableKind:
    kind: ResourceKind
    forms: frozenset[str]

    def cleanup_verbs(self) -> tuple[str, ...]:
        """What removing every form of it takes: find (list), re-read after a 409 or a lost
        answer (get), patch edits out, delete owned objects."""
        verbs = ["get", "list"]
        if self.forms & {ROUTE_COPY, FIELD_OVERRIDE}:
            verbs.append("patch")
        if OWNED_OBJECT in self.forms:
            verbs.append("delete")
        return tuple(verbs)


def edit_verbs(form: str) -> tuple[str, ...]:
    """What making an edit of ``form`` on one object, and removing it again, asks of the API
    on that object: read it and patch it for copies and overrides; create an owned object,
    read it back (after a conflict, before the delete's preconditions) and delete it. A
    game day's RBAC grants these by name (chaosmesh_py.gameday.rbac). ``watch`` on the object
    is welcome, not needed: the control follows each object the run edited, by a watch where
    it may, else by reading it every quarter second (``chaosmesh_py.engine.vanished``)."""
    return ("get", "patch") if form in (ROUTE_COPY, FIELD_OVERRIDE) else ("create", "get", "delete")


def editable_kinds(networking_version: str = "v1") -> tuple[EditableKind, ...]:
    """Every kind a capability may edit. ``networking_version`` is what the cluster serves for
    networking.istio.io (v1 since Istio 1.22); security.istio.io follows (v1 with it, else
    v1beta1); EnvoyFilter exists only as v1alpha3."""
    security_version = "v1" if networking_version == "v1" else "v1beta1"

    def networking(plural: str, kind: str, version: str = networking_version) -> ResourceKind:
        return ResourceKind(NETWORKING, version, plural, kind)

    def security(plural: str, kind: str) -> ResourceKind:
        return ResourceKind(SECURITY, security_version, plural, kind)

    return (
        EditableKind(
            networking("virtualservices", "VirtualService"),
            frozenset({ROUTE_COPY, FIELD_OVERRIDE}),
        ),
        EditableKind(
            networking("destinationrules", "DestinationRule"),
            frozenset({FIELD_OVERRIDE, OWNED_OBJECT}),
        ),
        EditableKind(
            networking("envoyfilters", "EnvoyFilter", "v1alpha3"), frozenset({OWNED_OBJECT})
        ),
        EditableKind(
            security("authorizationpolicies", "AuthorizationPolicy"), frozenset({OWNED_OBJECT})
        ),
        # A namespace's (or a workload's) mode is overridden where a policy of that scope
        # exists: Istio applies the oldest, so a second one would change nothing.
        EditableKind(
            security("peerauthentications", "PeerAuthentication"),
            frozenset({FIELD_OVERRIDE, OWNED_OBJECT}),
        ),
        # jwksUri overridden to an address nobody serves (chaosmesh_py.security.changes).
        EditableKind(
            security("requestauthentications", "RequestAuthentication"),
            frozenset({FIELD_OVERRIDE, OWNED_OBJECT}),
        ),
        # The local mesh's certificate requests (chaosmesh_py.security.certificates); on a
        # cluster none is ever written, so halt and reap find nothing of ours there.
        EditableKind(CONFIG_MAP, frozenset({OWNED_OBJECT})),
    )


def sweep_kinds(networking_version: str = "v1") -> tuple[ResourceKind, ...]:
    return tuple(k.kind for k in editable_kinds(networking_version))
