"""chaosmesh_py: Istio-native chaos engineering for Chaos Toolkit.

Chaos Toolkit finds the extension's activities through ``discover``. Each capability has its
own surface: ``chaosmesh_py.faults.{actions,rollbacks,probes}`` (delays and aborts),
``chaosmesh_py.observe.probes`` (load, Istio metrics, Envoy counters),
``chaosmesh_py.traffic.{actions,rollbacks,probes}`` (dark launches, canary steps, mirroring, and
what users get from them: share per version, leaks, canary analysis),
``chaosmesh_py.resilience.{actions,rollbacks,probes}`` (timeouts, retries, circuit breakers and
outlier detection under test, and upstream faults); the control that guarantees rollback is
``chaosmesh_py.control``.
"""

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

DISTRIBUTION = "chaostoolkit-chaosmesh-py"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = ["__version__", "discover"]


def discover(discover_system: bool = True) -> Any:
    """Describe every activity this extension offers, for ``chaos discover``."""
    from chaoslib.discovery.discover import (
        discover_actions,
        discover_probes,
        initialize_discovery_result,
    )

    discovery = initialize_discovery_result(DISTRIBUTION, __version__, "istio")
    discovery["activities"].extend(discover_actions("chaosmesh_py.faults.actions"))
    discovery["activities"].extend(discover_actions("chaosmesh_py.faults.rollbacks"))
    discovery["activities"].extend(discover_probes("chaosmesh_py.faults.probes"))
    discovery["activities"].extend(discover_probes("chaosmesh_py.observe.probes"))
    discovery["activities"].extend(discover_actions("chaosmesh_py.traffic.actions"))
    discovery["activities"].extend(discover_actions("chaosmesh_py.traffic.rollbacks"))
    discovery["activities"].extend(discover_probes("chaosmesh_py.traffic.probes"))
    for surface in ("actions", "rollbacks"):
        discovery["activities"].extend(discover_actions(f"chaosmesh_py.resilience.{surface}"))
    # Chaos Toolkit lists every function of a module whose __all__ is empty: a surface with no
    # activity yet is left out rather than shown its helpers.
    if importlib.import_module("chaosmesh_py.resilience.probes").__all__:
        discovery["activities"].extend(discover_probes("chaosmesh_py.resilience.probes"))
    for surface, discover_surface in (
        ("actions", discover_actions),
        ("rollbacks", discover_actions),
        ("probes", discover_probes),
    ):
        module = f"chaosmesh_py.security.{surface}"
        if importlib.import_module(module).__all__:
            discovery["activities"].extend(discover_surface(module))
    return discovery
