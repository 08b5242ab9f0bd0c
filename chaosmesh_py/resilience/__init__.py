"""Resilience policies under test: timeouts, retries, circuit breakers and outlier detection.

``actions`` are the owned policy edits (field overrides on VirtualService routes and
DestinationRules, with the value each replaced) and the upstream-side faults (an owned
EnvoyFilter on a workload's inbound chain); ``probes`` predict what the policies do (the policy
report) and measure it; ``rollbacks`` remove a run's edits. See docs/resilience.md.
"""
