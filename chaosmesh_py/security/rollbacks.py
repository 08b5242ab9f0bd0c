"""Chaos Toolkit rollbacks for security changes (``chaosmesh_py.security.rollbacks``).

The control removes every change of the run when it ends; these remove some of them earlier,
as an experiment's rollbacks section asks."""

# No `from __future__ import annotations`: `chaos discover` reads the activities' annotations
# as types (a string annotation would be shown to users as "object").

__all__: list[str] = []

# ------------------------------------------------------- policy changes (mTLS, deny, JWT)
# One rollback for both sections: a certificate request is an owned object like a policy.

from chaosmesh_py.engine.access import needs
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.security import removal

__all__ += ["remove_security_changes"]


@needs(removal.needs)
def remove_security_changes(
    namespace: str = "default", configuration: dict = None, secrets: dict = None
) -> dict:
    """Remove now every security change this run made in `namespace` (and, made in this
    process, mesh-wide ones in the root namespace): its PeerAuthentications,
    AuthorizationPolicies, RequestAuthentications and certificate requests deleted (with
    preconditions on the uid and resourceVersion of what it created), its overridden mTLS modes
    and jwksUris restored where they still hold its values (another writer's later value stays,
    reported under "conflicts"). Objects of others are never touched. Safe to repeat.
    """
    with boundary():
        return removal.remove_security_changes(namespace, configuration, secrets)


# ------------------------------------------------------- certificates (local mesh)
# (removed by remove_security_changes above)
