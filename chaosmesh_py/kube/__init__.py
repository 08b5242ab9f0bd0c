"""Kubernetes access: the only package that imports the ``kubernetes`` client.

``client`` holds the isolated ApiClient, credential resolution (chaostoolkit-kubernetes' order),
the project's error tree for API answers, and the re-reading write loop (``Kube.update``).
"""

from chaosmesh_py.kube.client import (
    Kube,
    Outcome,
    Plan,
    ResourceKind,
    ResourceRef,
    RetryPolicy,
    load_client,
    virtual_service_kind,
)

__all__ = [
    "Kube",
    "Outcome",
    "Plan",
    "ResourceKind",
    "ResourceRef",
    "RetryPolicy",
    "load_client",
    "virtual_service_kind",
]
