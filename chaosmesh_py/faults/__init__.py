"""Fault injection through VirtualServices: delays and aborts as owned route copies.

The Chaos Toolkit surface users type in experiments: ``chaosmesh_py.faults.actions``,
``chaosmesh_py.faults.rollbacks``, ``chaosmesh_py.faults.probes``.

Every activity here talks to the Kubernetes API, so importing the package loads the client:
Chaos Toolkit imports activity modules while it validates an experiment, before the run, and
the first injection does not pay for the import (``bench/first_call.py``).
"""

from chaosmesh_py.kube import load_client

load_client()
