"""Kubernetes access: the only package that imports the ``kubernetes`` client.

``credentials`` resolves credentials (chaostoolkit-kubernetes' order) into an isolated
ApiClient, user mistakes in them raised as ``InvalidInput``; ``client`` holds the project's error
tree for API answers and the re-reading write loops (``Kube.update``, ``ensure_created``,
``delete_if``); ``names`` checks object names before they reach a URL.
"""

from chaosmesh_py.kube.client import (
    CONFIG_MAP,
    DEPLOYMENT,
    ENDPOINTS,
    FIELD_MANAGER,
    LEASE,
    POD,
    SERVICE,
    Kube,
    Outcome,
    Plan,
    ResourceKind,
    ResourceRef,
    RetryPolicy,
    load_client,
    refuses_connections,
    virtual_service_kind,
)

__all__ = [
    "CONFIG_MAP",
    "DEPLOYMENT",
    "ENDPOINTS",
    "FIELD_MANAGER",
    "LEASE",
    "POD",
    "SERVICE",
    "Kube",
    "Outcome",
    "Plan",
    "ResourceKind",
    "ResourceRef",
    "RetryPolicy",
    "load_client",
    "refuses_connections",
    "virtual_service_kind",
]
