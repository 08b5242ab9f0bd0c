"""Chaos Toolkit actions for security changes (``chaosmesh_py.security.actions``).

Each action checks its arguments before any request, writes through the engine's ownership
path (owner record, ledger before the write, expiry), verifies its effect in the data plane
and is removed exactly by the control, ``rollback``, ``reap`` and ``halt``.
"""

# No `from __future__ import annotations`: `chaos discover` reads the activities' annotations
# as types (a string annotation would be shown to users as "object").

import inspect
from collections.abc import Callable, Mapping
from typing import Any

# Per action: what refuses its arguments (bound, defaults applied) before any request.
# The control and `chaos validate` call check_arguments on an experiment's arguments.
_ARGUMENT_CHECKS: dict[str, Callable[[Mapping[str, Any]], object]] = {}


def check_arguments(
    action: str, arguments: dict[str, Any], configuration: dict[str, Any] | None
) -> None:
    """Raise InvalidInput if ``action`` would refuse ``arguments``; sends nothing."""
    bound = inspect.signature(globals()[action]).bind(**arguments)
    bound.apply_defaults()
    check = _ARGUMENT_CHECKS.get(action)
    if check is not None:
        check({**bound.arguments, "configuration": configuration})


__all__: list[str] = []

# ------------------------------------------------------- policy changes (mTLS, deny, JWT)
# (docs/security.md, "Reversible security changes")

# ------------------------------------------------------- certificates (local mesh)
# (docs/security.md, "Certificates")
