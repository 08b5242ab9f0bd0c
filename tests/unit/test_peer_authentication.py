"""PeerAuthentication as istiod resolves it (chaosmesh_py.istio.peer_authentication): the mode a
workload's port gets, and what auto mTLS infers for a namespace."""

import pytest

from chaosmesh_py.istio.peer_authentication import effective_mtls, namespace_mtls

V2 = {"app": "reviews", "version": "v2"}


def pa(name, namespace, mode, selector=None, created="2026-01-01T00:00:00Z", *, ports=None):
    spec = {"mtls": {"mode": mode}} if mode else {}
    if selector is not None:
        spec["selector"] = {"matchLabels": selector}
    if ports is not None:
        spec["portLevelMtls"] = {str(port): {"mode": m} for port, m in ports.items()}
    return {"metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
            "spec": spec}  # fmt: skip


@pytest.mark.parametrize(
    ("policies", "mode"),
    [
        ([], "PERMISSIVE"),  # Istio's default
        ([pa("default", "istio-system", "STRICT")], "STRICT"),  # mesh wide
        (
            [pa("default", "istio-system", "STRICT"), pa("ns", "bookinfo", "PERMISSIVE")],
            "PERMISSIVE",
        ),
        (
            [pa("ns", "bookinfo", "STRICT"), pa("v2", "bookinfo", "UNSET", {"version": "v2"})],
            "STRICT",  # UNSET inherits
        ),
        (
            [pa("default", "istio-system", "STRICT"), pa("ns", "bookinfo", None)],
            "STRICT",  # no mtls at all inherits too
        ),
        (
            [pa("ns", "bookinfo", "STRICT"), pa("v2", "bookinfo", "DISABLE", {"version": "v2"})],
            "DISABLE",  # workload over namespace
        ),
        ([pa("v1", "bookinfo", "STRICT", {"version": "v1"})], "PERMISSIVE"),  # selects others
        ([pa("other", "default", "STRICT")], "PERMISSIVE"),  # another namespace
        # A selector in the root namespace selects workloads there, not the mesh.
        ([pa("default", "istio-system", "STRICT", {"app": "reviews"})], "PERMISSIVE"),
        # A selector with no labels is namespace wide.
        ([pa("all", "bookinfo", "STRICT", {})], "STRICT"),
        (
            [
                pa("b", "bookinfo", "PERMISSIVE", created="2026-02-01T00:00:00Z"),
                pa("a", "bookinfo", "STRICT", created="2026-03-01T00:00:00Z"),
            ],
            "PERMISSIVE",  # the oldest of a level wins
        ),
        (
            [
                pa("z", "bookinfo", "DISABLE", {"app": "reviews"}, "2026-02-01T00:00:00Z"),
                pa("a", "bookinfo", "STRICT", {"version": "v2"}, "2026-03-01T00:00:00Z"),
            ],
            "DISABLE",  # of two selecting the workload, the oldest
        ),
    ],
)
def test_a_workloads_mode_is_istiods(policies, mode):
    assert effective_mtls(policies, "bookinfo", V2, 9080) == mode


@pytest.mark.parametrize(
    ("policies", "port", "mode"),
    [
        # portLevelMtls of a workload policy: that port alone.
        (
            [pa("v2", "bookinfo", "STRICT", {"app": "reviews"}, ports={9080: "DISABLE"})],
            9080,
            "DISABLE",
        ),
        (
            [pa("v2", "bookinfo", "STRICT", {"app": "reviews"}, ports={9080: "DISABLE"})],
            8080,
            "STRICT",
        ),
        # A port's UNSET inherits the workload's resolved mode.
        (
            [
                pa("ns", "bookinfo", "STRICT"),
                pa("v2", "bookinfo", None, {"app": "reviews"}, ports={9080: "UNSET"}),
            ],
            9080,
            "STRICT",
        ),
        # istiod ignores portLevelMtls on a policy without a selector.
        ([pa("ns", "bookinfo", "STRICT", ports={9080: "DISABLE"})], 9080, "STRICT"),
        # No port asked: the workload's mode.
        (
            [pa("v2", "bookinfo", "STRICT", {"app": "reviews"}, ports={9080: "DISABLE"})],
            None,
            "STRICT",
        ),
    ],
)
def test_port_level_mtls_applies_to_its_port_only(policies, port, mode):
    assert effective_mtls(policies, "bookinfo", V2, port) == mode


def test_auto_mtls_infers_from_namespace_and_mesh_policies_only():
    workload_disable = pa("v2", "bookinfo", "DISABLE", {"app": "reviews"})
    assert namespace_mtls([workload_disable], "bookinfo") == "PERMISSIVE"
    assert namespace_mtls([pa("ns", "bookinfo", "DISABLE")], "bookinfo") == "DISABLE"
    mesh = pa("default", "istio-system", "DISABLE")
    assert namespace_mtls([mesh], "bookinfo") == "DISABLE"
    assert namespace_mtls([mesh, pa("ns", "bookinfo", "STRICT")], "bookinfo") == "STRICT"
