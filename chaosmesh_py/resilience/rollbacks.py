"""Chaos Toolkit rollbacks for resilience edits (``chaosmesh_py.resilience.rollbacks``).

The control removes every edit of the run when it ends; these remove some of them earlier, as
an experiment's rollbacks section asks."""

# No `from __future__ import annotations`: `chaos discover` reads the activities' annotations
# as types (a string annotation would be shown to users as "object").

__all__: list[str] = []

# ------------------------------------------------------- policy edits

from chaosmesh_py.engine.access import needs
from chaosmesh_py.engine.activity import boundary
from chaosmesh_py.resilience import policy_edits

__all__ += ["restore_policies"]


@needs(policy_edits.restore_needs)
def restore_policies(
    virtual_service: str = None,
    destination_rule: str = None,
    namespace: str = "default",
    configuration: dict = None,
    secrets: dict = None,
) -> dict:
    """Restore now this run's policy edits (timeouts, retries, connection pools, outlier
    detection) on the VirtualService `virtual_service` or the DestinationRule
    `destination_rule` in `namespace`; with neither, on every object the run wrote to. Each
    field gets back the value it replaced where it still holds the run's; a field another
    writer changed meanwhile keeps their value and is reported under "conflicts". The run's
    route copies (faults, routing edits) stay. Safe to repeat.
    """
    with boundary():
        return policy_edits.restore(
            virtual_service, destination_rule, namespace, configuration, secrets
        )


# ------------------------------------------------------- upstream faults
# (needs and boundary: imported above, by the policy edits' section)
from chaosmesh_py.engine.run import run_for  # noqa: E402
from chaosmesh_py.faults import injection  # noqa: E402
from chaosmesh_py.kube import Kube  # noqa: E402
from chaosmesh_py.resilience import upstream  # noqa: E402

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
