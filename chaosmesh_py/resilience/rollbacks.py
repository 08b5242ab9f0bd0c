"""Chaos Toolkit rollbacks for resilience edits (``chaosmesh_py.resilience.rollbacks``).

The control removes every edit of the run when it ends; these remove some of them earlier, as
an experiment's rollbacks section asks."""

from __future__ import annotations

__all__: list[str] = []

# ------------------------------------------------------- policy edits

__all__ += []  # this section's Chaos Toolkit functions, by name


# ------------------------------------------------------- upstream faults

__all__ += []  # this section's Chaos Toolkit functions, by name
