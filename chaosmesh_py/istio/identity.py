"""Workload identities as Istio names them: SPIFFE IDs and AuthorizationPolicy principals.

A workload's identity is its pod's service account: istiod's CA signs a certificate whose URI
SAN is ``spiffe://<trust domain>/ns/<namespace>/sa/<service account>``, and an
AuthorizationPolicy's ``principals`` name the same identity without the scheme
(``cluster.local/ns/<namespace>/sa/<service account>``), which istiod turns back into a match on
the peer certificate's URI SAN. Pure: no I/O.
"""

from __future__ import annotations

TRUST_DOMAIN = "cluster.local"
# What a pod runs as when its spec names no serviceAccountName (Kubernetes' default).
DEFAULT_SERVICE_ACCOUNT = "default"
# Istio's ingress gateway (istio-system), as its Helm chart names the gateway's service account.
INGRESS_GATEWAY_SERVICE_ACCOUNT = "istio-ingressgateway-service-account"
SPIFFE_SCHEME = "spiffe://"


def spiffe_id(namespace: str, service_account: str, trust_domain: str = TRUST_DOMAIN) -> str:
    """The URI SAN of the workload certificate: ``spiffe://cluster.local/ns/N/sa/S``."""
    return f"{SPIFFE_SCHEME}{trust_domain}/ns/{namespace}/sa/{service_account}"


def principal(namespace: str, service_account: str) -> str:
    """An AuthorizationPolicy's ``principals`` form: ``cluster.local/ns/N/sa/S``."""
    return spiffe_id(namespace, service_account).removeprefix(SPIFFE_SCHEME)


def trust_domain_prefix(trust_domain: str = TRUST_DOMAIN) -> str:
    """What every peer certificate of the mesh starts its URI SAN with (istiod's inbound check)."""
    return f"{SPIFFE_SCHEME}{trust_domain}/"
