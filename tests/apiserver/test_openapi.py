"""`/openapi/v2` and `/openapi/v3`, as kube-apiserver publishes them and kubectl reads them."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from chaosmesh_py.localmesh.apiserver import ApiServer
from tests.apiserver.conftest import raw

PROTOBUF_ONLY = {"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"}


def v3(server: ApiServer, key: str) -> dict[str, Any]:
    _, _, index = raw(server, "GET", "/openapi/v3")
    status, _, document = raw(server, "GET", index["paths"][key]["serverRelativeURL"])
    assert status == 200
    return document


def patch_operation(document: dict[str, Any], kind: str) -> dict[str, Any]:
    """The PATCH operation kubectl looks for: the one whose GVK extension names `kind`."""
    found = [
        item["patch"]
        for path, item in document["paths"].items()
        if "patch" in item
        and not path.endswith("/status")
        and item["patch"]["x-kubernetes-group-version-kind"]["kind"] == kind
    ]
    assert len(found) == 1
    return found[0]


def test_the_v3_index_names_every_served_group_version_with_a_content_hash(
    server: ApiServer,
) -> None:
    status, _, index = raw(server, "GET", "/openapi/v3")
    assert status == 200
    paths = index["paths"]
    for key in (
        "api/v1",
        "apis/batch/v1",
        "apis/coordination.k8s.io/v1",
        "apis/rbac.authorization.k8s.io/v1",
        "apis/networking.istio.io/v1",
        "apis/networking.istio.io/v1alpha3",
    ):
        url = paths[key]["serverRelativeURL"]
        path, _, digest = url.partition("?hash=")
        assert path == f"/openapi/v3/{key}"
        _, _, body = raw(server, "GET", url)
        encoded = json.dumps(body, separators=(",", ":")).encode()
        assert digest == hashlib.sha512(encoded).hexdigest().upper()
    assert raw(server, "GET", "/openapi/v3/apis/batch/v2")[0] == 404


def test_a_hashed_document_may_be_cached_the_index_may_not(server: ApiServer) -> None:
    _, headers, index = raw(server, "GET", "/openapi/v3")
    assert headers["Cache-Control"] == "no-cache, private"
    _, headers, _ = raw(server, "GET", index["paths"]["apis/batch/v1"]["serverRelativeURL"])
    # As kube-apiserver answers it: kubectl's disk cache then serves it without asking.
    assert headers["Cache-Control"] == "public, immutable, max-age=31536000"


def test_a_built_in_kind_takes_field_validation_and_strategic_merge(server: ApiServer) -> None:
    document = v3(server, "apis/batch/v1")
    operation = patch_operation(document, "CronJob")
    assert operation["x-kubernetes-group-version-kind"] == {
        "group": "batch",
        "kind": "CronJob",
        "version": "v1",
    }
    query = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
    assert "fieldValidation" in query
    assert "application/strategic-merge-patch+json" in operation["requestBody"]["content"]
    schemas = document["components"]["schemas"]
    cron_job = schemas["io.k8s.api.batch.v1.CronJob"]
    assert cron_job["x-kubernetes-group-version-kind"] == [
        {"group": "batch", "kind": "CronJob", "version": "v1"}
    ]
    spec = schemas["io.k8s.api.batch.v1.CronJobSpec"]
    assert spec["required"] == ["jobTemplate", "schedule"]
    assert spec["properties"]["timeZone"]["type"] == "string"
    assert spec["properties"]["startingDeadlineSeconds"]["format"] == "int64"
    container = schemas["io.k8s.api.core.v1.Container"]
    assert container["properties"]["image"]["type"] == "string"
    # Kubernetes' patch strategies, from which kubectl computes its strategic merge patches.
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert container["properties"]["volumeMounts"]["x-kubernetes-patch-merge-key"] == "mountPath"
    assert "x-kubernetes-patch-strategy" not in container["properties"]["args"]
    # Every reference resolves inside the document.
    text = json.dumps(document)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}:
        assert ref in schemas, ref


def test_a_custom_kind_is_published_from_its_crd_without_strategic_merge(
    server: ApiServer,
) -> None:
    document = v3(server, "apis/networking.istio.io/v1")
    operation = patch_operation(document, "VirtualService")
    assert "fieldValidation" in {p["name"] for p in operation["parameters"]}
    assert "application/strategic-merge-patch+json" not in operation["requestBody"]["content"]
    assert "application/merge-patch+json" in operation["requestBody"]["content"]
    schema = document["components"]["schemas"]["io.istio.networking.v1.VirtualService"]
    crd = server.registry.by_api_version("networking.istio.io/v1", "VirtualService")
    assert crd is not None
    served = crd[0].schema("v1")
    assert served is not None
    assert schema["properties"]["spec"] == served.openapi["properties"]["spec"]


def test_v2_is_one_swagger_document_for_everything_served(server: ApiServer) -> None:
    status, headers, swagger = raw(
        server, "GET", "/openapi/v2", headers={"Accept": "application/json"}
    )
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert swagger["swagger"] == "2.0"
    definitions = swagger["definitions"]
    kinds = {
        (gvk["group"], gvk["version"], gvk["kind"])
        for schema in definitions.values()
        for gvk in schema.get("x-kubernetes-group-version-kind", ())
    }
    for kind in (
        ("coordination.k8s.io", "v1", "Lease"),
        ("batch", "v1", "CronJob"),
        ("batch", "v1", "Job"),
        ("", "v1", "ServiceAccount"),
        ("", "v1", "PersistentVolumeClaim"),
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
        ("networking.istio.io", "v1alpha3", "EnvoyFilter"),
    ):
        assert kind in kinds
    assert "#/components/" not in json.dumps(swagger)
    lease_patch = swagger["paths"][
        "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
    ]["patch"]
    body = next(p for p in lease_patch["parameters"] if p["in"] == "body")
    assert body["schema"] == {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}


def test_v2_as_protobuf_is_not_acceptable(server: ApiServer) -> None:
    status, _, body = raw(server, "GET", "/openapi/v2", headers=PROTOBUF_ONLY)
    assert status == 406
    assert body["reason"] == "NotAcceptable"


def test_openapi_is_read_only(server: ApiServer) -> None:
    assert raw(server, "POST", "/openapi/v3", {})[0] == 405
