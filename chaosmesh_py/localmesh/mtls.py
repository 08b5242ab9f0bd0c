"""Mutual TLS on the local mesh's one Envoy, as istiod configures each sidecar's.

On a cluster every pod has its own Envoy holding its own certificate: its outbound connections
present it, its inbound listener serves it. The local mesh runs one Envoy for every sidecar, and
istiod's outbound clusters (``outbound|<port>|<subset>|<fqdn>``) are shared by all callers. So
the caller's identity travels with each connection:

- Each caller listener (every pod's ``sidecar~`` listener, the ingress gateway, each ``entry~``
  listener) starts its network filters with ``envoy.filters.network.set_filter_state``, which
  puts the caller's secret name in the connection's filter state under ``IDENTITY_KEY``, shared
  with the upstream connection. The object is made by ``envoy.hashable_string``: a hashable
  object is part of the upstream connection pool's key, so callers never share a pooled
  connection (``envoy.string`` is not hashable, and a connection opened with one caller's
  certificate would then carry another caller's requests).
- Each outbound cluster that speaks mTLS has one ``transport_socket_matches`` entry per caller,
  each presenting that caller's certificate, and a ``transport_socket_matcher`` on
  ``envoy.matching.inputs.transport_socket_filter_state`` choosing the entry by the caller's
  name. The client TLS is istiod's (``cluster_tls.go``): SNI ``outbound_.<port>_.<subset>_.
  <fqdn>``, ALPN ``istio-peer-exchange, istio``, the destination's service accounts as the only
  SANs accepted, roots from ``ROOTCA``.
- Each pod's inbound listener serves the pod's certificate (``listener_inbound.go``): client
  certificate required, roots ``ROOTCA``, a peer URI SAN under ``spiffe://cluster.local/``,
  ALPN ``h2, http/1.1``, TLS 1.2 to 1.3; the filter chains follow PeerAuthentication's mode.

Secrets come by file-based SDS (``chaosmesh_py.localmesh.envoy.Envoy.sds_config_source``): one
per caller, ``default~<namespace>~<pod>`` (each pod its own key, as each pod's agent makes
one), and ``ROOTCA``. A certificate re-issued on disk reaches Envoy without a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaosmesh_py.istio.identity import (
    DEFAULT_SERVICE_ACCOUNT,
    INGRESS_GATEWAY_SERVICE_ACCOUNT,
    spiffe_id,
    trust_domain_prefix,
)
from chaosmesh_py.istio.peer_authentication import DISABLE, PERMISSIVE, STRICT, namespace_mtls
from chaosmesh_py.localmesh.topology import Service, Topology, Workload

JsonDict = dict[str, Any]
SdsConfigSource = Callable[[str], JsonDict]

ROOT_SECRET = "ROOTCA"
IDENTITY_KEY = "io.chaosmesh.local.caller"
INGRESS_NAMESPACE = "istio-system"
INGRESS_CALLER = "istio-ingressgateway"
# istiod's: the client offers these, a PERMISSIVE inbound's TLS chain matches them.
CLIENT_ALPN = ["istio-peer-exchange", "istio"]
MTLS_ALPN = ["istio-peer-exchange", "istio", "istio-http/1.0", "istio-http/1.1", "istio-h2"]
SERVER_ALPN = ["h2", "http/1.1"]
UPSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
DOWNSTREAM_TLS = (
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
)
SET_FILTER_STATE = "type.googleapis.com/envoy.extensions.filters.network.set_filter_state.v3.Config"
TLS_INSPECTOR = (
    "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
)
TRANSPORT_SOCKET_INPUTS = (
    "type.googleapis.com/envoy.extensions.matching.common_inputs.transport_socket.v3"
)


@dataclass(frozen=True)
class Caller:
    """One identity that makes outbound calls: its secret's name (also the filter-state value
    naming it) and its SPIFFE ID."""

    secret: str
    spiffe_id: str


@dataclass(frozen=True)
class Secrets:
    """Where Envoy reads each secret, and each caller's certificate version (its serial): a
    changed version changes every mTLS cluster, so Envoy drains their pooled connections and
    every connection from then on is made with the certificates now in force."""

    config_source: SdsConfigSource
    versions: Mapping[str, str] = field(default_factory=dict)


def workload_secret(namespace: str, instance: str) -> str:
    """A pod's secret (its certificate and key): each pod its own."""
    return f"default~{namespace}~{instance}"


def entry_secret(namespace: str) -> str:
    """The ``entry~`` listeners of a namespace call as a pod of it running as ``default``."""
    return f"default~{namespace}~entry"


def workload_caller(workload: Workload) -> Caller:
    return Caller(
        workload_secret(workload.namespace, workload.instance),
        spiffe_id(workload.namespace, workload.service_account),
    )


def callers(topology: Topology) -> list[Caller]:
    """Every identity the topology's caller listeners use: each pod, the ingress gateway, and
    one per namespace with an entry listener."""
    found = [workload_caller(workload) for workload in topology.workloads]
    if topology.ingress is not None:
        found.append(ingress_caller())
    namespaces = {s.namespace for s in topology.services if s.name in topology.entry_ports}
    found += [entry_caller(namespace) for namespace in sorted(namespaces)]
    return found


def ingress_caller() -> Caller:
    return Caller(
        workload_secret(INGRESS_NAMESPACE, INGRESS_CALLER),
        spiffe_id(INGRESS_NAMESPACE, INGRESS_GATEWAY_SERVICE_ACCOUNT),
    )


def entry_caller(namespace: str) -> Caller:
    return Caller(entry_secret(namespace), spiffe_id(namespace, DEFAULT_SERVICE_ACCOUNT))


def identity_filter(caller: Caller) -> JsonDict:
    """The caller listener's first network filter: its identity on every connection it
    accepts, shared with (and part of the pool key of) the upstream connections."""
    return {
        "name": "envoy.filters.network.set_filter_state",
        "typed_config": {
            "@type": SET_FILTER_STATE,
            "on_new_connection": [
                {
                    "object_key": IDENTITY_KEY,
                    "factory_key": "envoy.hashable_string",
                    # Not read_only: Envoy 1.40 deprecates it (and warns at every listener).
                    "format_string": {"text_format_source": {"inline_string": caller.secret}},
                    "shared_with_upstream": "ONCE",
                }
            ],
        },
    }


def sni(port: int, subset: str, fqdn: str) -> str:
    """istiod's SNI for an outbound cluster (``model.BuildDNSSrvSubsetKey``)."""
    return f"outbound_.{port}_.{subset}_.{fqdn}"


def client_tls(
    callers: Sequence[Caller],
    secrets: Secrets,
    server_name: str,
    destination_spiffe_ids: Iterable[str],
) -> JsonDict:
    """An mTLS cluster's ``transport_socket_matches`` and ``transport_socket_matcher``: one
    entry per caller, chosen by the caller's name in the connection's filter state."""
    sans = [
        {"san_type": "URI", "matcher": {"exact": identity}}
        for identity in sorted(set(destination_spiffe_ids))
    ]
    matches = []
    choices = {}
    for caller in sorted(callers, key=lambda c: c.secret):
        # The version in the name: a re-issued certificate changes the cluster (see Secrets).
        version = secrets.versions.get(caller.secret, "")
        name = f"{caller.secret}~{version}" if version else caller.secret
        matches.append(
            {
                "name": name,
                "transport_socket": {
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": {
                        "@type": UPSTREAM_TLS,
                        "sni": server_name,
                        "common_tls_context": {
                            "alpn_protocols": CLIENT_ALPN,
                            "tls_certificate_sds_secret_configs": [_sds(caller.secret, secrets)],
                            "combined_validation_context": {
                                "default_validation_context": {
                                    "match_typed_subject_alt_names": sans
                                },
                                "validation_context_sds_secret_config": _sds(ROOT_SECRET, secrets),
                            },
                        },
                    },
                },
            }
        )
        choices[caller.secret] = {
            "action": {
                "name": "envoy.matching.action.transport_socket.name",
                "typed_config": {
                    "@type": f"{TRANSPORT_SOCKET_INPUTS}.TransportSocketNameAction",
                    "name": name,
                },
            }
        }
    return {
        "transport_socket_matches": matches,
        "transport_socket_matcher": {
            "matcher_tree": {
                "input": {
                    "name": "envoy.matching.inputs.transport_socket_filter_state",
                    "typed_config": {
                        "@type": f"{TRANSPORT_SOCKET_INPUTS}.FilterStateInput",
                        "key": IDENTITY_KEY,
                    },
                },
                "exact_match_map": {"map": choices},
            }
        },
    }


class MeshTls:
    """What an outbound cluster's client TLS needs: the secrets, every caller, and the
    PeerAuthentications auto mTLS reads."""

    def __init__(
        self, secrets: Secrets, callers: list[Caller], peer_authentications: Sequence[Any]
    ) -> None:
        self.secrets = secrets
        self.callers = callers
        self.peer_authentications = peer_authentications

    def cluster_tls(
        self, service: Service, subset: str, endpoints: list[Workload], policy: Mapping[str, Any]
    ) -> JsonDict:
        """The cluster's transport sockets: mTLS unless the DestinationRule's ``tls.mode`` is
        DISABLE, or (no mode set: auto mTLS) the destination's namespace- or mesh-level
        PeerAuthentication is DISABLE, istiod's best-effort inference. Every local endpoint
        has a sidecar, so auto mTLS otherwise sends TLS."""
        mode = str((policy.get("tls") or {}).get("mode") or "").upper()
        if mode == DISABLE:
            return {}
        if mode != "ISTIO_MUTUAL" and (
            namespace_mtls(self.peer_authentications, service.namespace) == DISABLE
        ):
            return {}
        return client_tls(
            self.callers,
            self.secrets,
            sni(service.port, subset, service.fqdn),
            (spiffe_id(w.namespace, w.service_account) for w in endpoints),
        )


def inbound_chains(
    mode: str, chain_name: str, filters: list[JsonDict], secret: str, secrets: Secrets | None
) -> tuple[list[JsonDict], list[JsonDict]]:
    """An inbound listener's filter chains and listener filters under PeerAuthentication's
    ``mode`` (istiod's ``filterchain_options.go``): STRICT a TLS chain only, so plain text
    matches no chain and its connection is closed; PERMISSIVE that TLS chain (for the ALPN
    istio's clients offer) and a plain-text one, told apart by the TLS inspector; DISABLE plain
    text only. Without ``secrets`` (a translation with no CA) every chain is plain text."""
    plain: JsonDict = {"name": chain_name, "filters": filters}
    if secrets is None or mode == DISABLE:
        return [plain], []
    tls: JsonDict = {
        "name": chain_name,
        "filter_chain_match": {"transport_protocol": "tls"},
        "filters": filters,
        "transport_socket": _server_tls(secret, secrets),
    }
    inspector = [
        {"name": "envoy.filters.listener.tls_inspector", "typed_config": {"@type": TLS_INSPECTOR}}
    ]
    if mode == STRICT:
        return [tls], inspector
    assert mode == PERMISSIVE, mode
    tls["filter_chain_match"]["application_protocols"] = MTLS_ALPN
    plain["filter_chain_match"] = {"transport_protocol": "raw_buffer"}
    return [tls, plain], inspector


def _server_tls(secret: str, secrets: Secrets) -> JsonDict:
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": DOWNSTREAM_TLS,
            "require_client_certificate": True,
            "common_tls_context": {
                "alpn_protocols": SERVER_ALPN,
                "tls_params": {
                    "tls_minimum_protocol_version": "TLSv1_2",
                    "tls_maximum_protocol_version": "TLSv1_3",
                },
                "tls_certificate_sds_secret_configs": [_sds(secret, secrets)],
                "combined_validation_context": {
                    "default_validation_context": {
                        "match_typed_subject_alt_names": [
                            {"san_type": "URI", "matcher": {"prefix": trust_domain_prefix()}}
                        ]
                    },
                    "validation_context_sds_secret_config": _sds(ROOT_SECRET, secrets),
                },
            },
        },
    }


def _sds(name: str, secrets: Secrets) -> JsonDict:
    return {"name": name, "sds_config": secrets.config_source(name)}


def certificate_secret(name: str, certificate_pem: bytes, private_key_pem: bytes) -> JsonDict:
    """A caller's SDS Secret: its certificate chain and key, inline (the file is 0600)."""
    return {
        "name": name,
        "tls_certificate": {
            "certificate_chain": {"inline_string": certificate_pem.decode()},
            "private_key": {"inline_string": private_key_pem.decode()},
        },
    }


def root_secret(root_pem: bytes) -> JsonDict:
    """``ROOTCA``: the roots every peer certificate must chain to."""
    return {
        "name": ROOT_SECRET,
        "validation_context": {"trusted_ca": {"inline_string": root_pem.decode()}},
    }
