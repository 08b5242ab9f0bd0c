"""Traffic management under test: dark launches, weighted shifts and mirroring as owned route
copies, and probes that measure what users get (observed share per version, dark-launch leaks,
canary analysis) rather than what the configuration says.

The Chaos Toolkit surface users type in experiments: ``chaosmesh_py.traffic.actions``,
``chaosmesh_py.traffic.rollbacks``, ``chaosmesh_py.traffic.probes``.

As for faults, importing the package loads the Kubernetes client while Chaos Toolkit validates
the experiment, so the first edit does not pay for it (``bench/first_call.py``).
"""

from chaosmesh_py.kube import load_client

load_client()
