"""Steady state, measured: real HTTP load, Istio's metrics through PromQL, Envoy's counters.

The Chaos Toolkit surface: ``chaosmesh_py.observe.probes``.
"""
