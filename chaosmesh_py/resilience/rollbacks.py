"""Chaos Toolkit rollbacks for resilience edits (``chaosmesh_py.resilience.rollbacks``).

The control removes every edit of the run when it ends; these remove some of them earlier, as
an experiment's rollbacks section asks."""

from __future__ import annotations

from chaosmesh_py.engine.access import needs
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.engine.run import run_for
from chaosmesh_py.faults import injection
from chaosmesh_py.kube import Kube
from chaosmesh_py.resilience import upstream

__all__: list[str] = []

# ------------------------------------------------------- policy edits

__all__ += []  # this section's Chaos Toolkit functions, by name


# ------------------------------------------------------- upstream faults

__all__ += ["remove_upstream_faults"]


@needs(upstream.removal_needs)
def remove_upstream_faults(
    namespace: str = "default", configuration: dict = None, secrets: dict = None
) -> dict:
    """Delete every upstream fault (inbound EnvoyFilter) this run created in `namespace` now;
    EnvoyFilters of others are never touched. Returns what was removed."""
    with boundary():
        settings = injection.Settings.from_configuration(configuration)
        checked_namespace = upstream.parse_namespace(namespace, settings)
        return upstream.remove(Kube.connect(secrets), run_for(configuration), checked_namespace)
