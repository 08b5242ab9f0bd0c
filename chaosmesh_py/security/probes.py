"""Chaos Toolkit probes for security (``chaosmesh_py.security.probes``): a policy behaviour
matrix from real requests, and posture checks."""

# No `from __future__ import annotations`: `chaos discover` reads the activities' annotations
# as types (a string annotation would be shown to users as "object").

from collections.abc import Callable, Mapping
from typing import Any

# Per probe: what refuses its arguments (bound, defaults applied) before any request.
_ARGUMENT_CHECKS: dict[str, Callable[[Mapping[str, Any]], object]] = {}


def check_arguments(
    probe: str, arguments: Mapping[str, Any], configuration: Mapping[str, Any] | None
) -> None:
    """Raise InvalidInput if ``probe`` would refuse ``arguments`` (bound, defaults applied)."""
    check = _ARGUMENT_CHECKS.get(probe)
    if check is not None:
        check(arguments)


__all__: list[str] = []

# ------------------------------------------------------------ policy behaviour matrix
# (docs/security.md, "The policy matrix")

# ------------------------------------------------------------ posture checks
# (docs/security.md, "Posture checks")
