"""Kubernetes access: the only package that imports the ``kubernetes`` client.

``client`` holds the isolated ApiClient, credential resolution (chaostoolkit-kubernetes' order),
the project's error tree for API answers, and the re-reading write loops (``Kube.update``,
``ensure_created``, ``delete_if``); ``names`` checks object names before they reach a URL.
"""

from chaosmesh_py.kube.client import (
    Kube,
    Outcome,
    Plan,
    ResourceKind,
    ResourceRef,
    RetryPolicy,
    refuses_connections,
    virtual_service_kind,
)

__all__ = [
    "Kube",
    "Outcome",
    "Plan",
    "ResourceKind",
    "ResourceRef",
    "RetryPolicy",
    "refuses_connections",
    "virtual_service_kind",
]
