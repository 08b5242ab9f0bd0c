"""Chaos Toolkit probes for resilience policies (``chaosmesh_py.resilience.probes``): the policy
report's predictions, and what the data plane measured."""

# No `from __future__ import annotations`: `chaos discover` reads the activities' annotations
# as types (a string annotation would be shown to users as "object").

from collections.abc import Callable, Mapping
from typing import Any

# Per probe: what refuses its arguments before it measures anything (no request, no API call).
_ARGUMENT_CHECKS: dict[str, Callable[[Mapping[str, Any]], object]] = {}


def check_arguments(
    probe: str, arguments: Mapping[str, Any], configuration: Mapping[str, Any] | None
) -> None:
    """Raise InvalidInput if ``probe`` would refuse ``arguments`` (bound, defaults applied)."""
    check = _ARGUMENT_CHECKS.get(probe)
    if check is not None:
        check(arguments)


__all__: list[str] = []

# ------------------------------------------------------------ policy report (predictions)

__all__ += []  # this section's Chaos Toolkit functions, by name


# ------------------------------------------------------------ measured on the data plane

__all__ += []  # this section's Chaos Toolkit functions, by name
