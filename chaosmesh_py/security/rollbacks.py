"""Chaos Toolkit rollbacks for security changes (``chaosmesh_py.security.rollbacks``).

The control removes every change of the run when it ends; these remove some of them earlier,
as an experiment's rollbacks section asks."""

# No `from __future__ import annotations`: `chaos discover` reads the activities' annotations
# as types (a string annotation would be shown to users as "object").

__all__: list[str] = []

# ------------------------------------------------------- policy changes (mTLS, deny, JWT)

# ------------------------------------------------------- certificates (local mesh)
