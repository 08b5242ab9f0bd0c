"""Chaos Toolkit rollbacks for resilience edits (``chaosmesh_py.resilience.rollbacks``).

The control removes every edit of the run when it ends; these remove some of them earlier, as
an experiment's rollbacks section asks."""

from __future__ import annotations

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

__all__ += []  # this section's Chaos Toolkit functions, by name
