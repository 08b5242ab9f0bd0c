"""Fault injection through VirtualServices: delays and aborts as owned route copies.

The Chaos Toolkit surface users type in experiments: ``chaosmesh_py.faults.actions``,
``chaosmesh_py.faults.rollbacks``, ``chaosmesh_py.faults.probes``.
"""
