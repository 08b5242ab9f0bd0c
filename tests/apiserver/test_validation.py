"""Pruning, structural schema validation, CEL rules and the Istio webhook, as on a cluster."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from celpy import celtypes
from kubernetes.client.exceptions import ApiException

from chaosmesh_py.localmesh.apiserver import ApiError, ApiServer, Review
from chaosmesh_py.localmesh.apiserver.cel import CelRule, parse_go_duration
from chaosmesh_py.localmesh.apiserver.resources import load_crds
from tests.apiserver.conftest import (
    ISTIO_CRDS,
    NETWORKING,
    raw,
    status_body,
    virtual_service,
    with_fault,
)

VS = (*NETWORKING, "default", "virtualservices")
UNIX_SOCKET_RULE = (
    'self.startsWith("unix://") ? (self.substring(7, 8) == "/" || self.substring(7, 8) == "@")'
    " : true"
)
COLLECTION = "/apis/networking.istio.io/v1/namespaces/default/virtualservices"


def invalid(custom, obj: dict[str, Any], plural: str = "virtualservices") -> dict[str, Any]:
    """Create `obj`, expect 422, return the Status body."""
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(*NETWORKING, "default", plural, obj)
    assert caught.value.status == 422
    body = status_body(caught.value)
    assert body["reason"] == "Invalid"
    return body


def test_unknown_fields_are_pruned_with_a_warning(server: ApiServer) -> None:
    obj = with_fault(
        {"delay": {"fixed_delay": "7s", "fixedDelay": "7s", "percentage": {"value": 100}}}
    )
    obj["metadata"]["colour"] = "blue"
    status, headers, created = raw(
        server, "POST", COLLECTION, obj, {"Content-Type": "application/json"}
    )
    assert status == 201
    assert created["spec"]["http"][0]["fault"]["delay"] == {
        "fixedDelay": "7s",
        "percentage": {"value": 100},
    }
    assert "colour" not in created["metadata"]
    assert headers.get_all("Warning") == [
        '299 - "unknown field \\"metadata.colour\\""',
        '299 - "unknown field \\"spec.http[0].fault.delay.fixed_delay\\""',
    ]


def test_warning_header_reaches_the_kubernetes_client(custom) -> None:
    obj = virtual_service()
    obj["spec"]["hostz"] = ["typo"]
    created, _, headers = custom.create_namespaced_custom_object_with_http_info(*VS, obj)
    assert "hostz" not in created["spec"]
    assert headers["Warning"] == '299 - "unknown field \\"spec.hostz\\""'


def test_field_validation_ignore_sends_no_warning(custom) -> None:
    obj = virtual_service()
    obj["spec"]["hostz"] = ["typo"]
    _, _, headers = custom.create_namespaced_custom_object_with_http_info(
        *VS, obj, field_validation="Ignore"
    )
    assert "Warning" not in headers


def test_field_validation_strict_rejects_unknown_fields_with_400(server: ApiServer, custom) -> None:
    obj = with_fault({"delay": {"fixed_delay": "7s", "percentage": {"value": 100}}})
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(*VS, obj, field_validation="Strict")
    assert caught.value.status == 400  # a real apiserver answers BadRequest, not Invalid
    assert status_body(caught.value)["message"] == (
        'VirtualService in version "v1" cannot be handled as a VirtualService:'
        ' strict decoding error: unknown field "spec.http[0].fault.delay.fixed_delay"'
    )
    assert server.get("networking.istio.io/v1", "VirtualService", "default", "ratings") is None


def test_pruning_keeps_preserved_unknown_fields(server: ApiServer) -> None:
    envoy_filter = {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": "lua", "namespace": "default"},
        "spec": {
            "configPatches": [{"applyTo": "HTTP_FILTER", "patch": {"value": {"any": {"thing": 1}}}}]
        },
    }
    created = server.create(envoy_filter)
    assert created["spec"]["configPatches"][0]["patch"]["value"] == {"any": {"thing": 1}}


def test_schema_type_error_is_422_with_causes(custom) -> None:
    body = invalid(
        custom,
        virtual_service(
            "ratings", http=[{"timeout": 5, "route": [{"destination": {"host": "r"}}]}]
        ),
    )
    assert body["message"] == (
        'VirtualService.networking.istio.io "ratings" is invalid: spec.http[0].timeout:'
        ' Invalid value: "integer": spec.http[0].timeout in body must be of type string: "integer"'
    )
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueTypeInvalid",
            "message": 'Invalid value: "integer": spec.http[0].timeout in body must be of type'
            ' string: "integer"',
            "field": "spec.http[0].timeout",
        }
    ]
    assert body["details"]["kind"] == "VirtualService"
    assert body["details"]["group"] == "networking.istio.io"


def test_one_of_two_abort_kinds(custom) -> None:
    body = invalid(custom, with_fault({"abort": {"httpStatus": 500, "grpcStatus": "UNAVAILABLE"}}))
    assert body["details"]["causes"][0]["field"] == "spec.http[0].fault.abort"
    assert "must validate one and only one schema (oneOf)" in body["message"]


def test_int32_bounds_and_enums(custom) -> None:
    body = invalid(
        custom, with_fault({"abort": {"httpStatus": 2**31, "percentage": {"value": 100}}})
    )
    assert "should be less than or equal to 2147483647" in body["message"]
    rule = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "reviews"},
        "spec": {"host": "reviews", "trafficPolicy": {"loadBalancer": {"simple": "FASTEST"}}},
    }
    body = invalid(custom, rule, "destinationrules")
    assert body["details"]["causes"][0]["reason"] == "FieldValueNotSupported"
    assert body["details"]["causes"][0]["field"] == "spec.trafficPolicy.loadBalancer.simple"


def test_several_errors_are_aggregated(custom) -> None:
    obj = virtual_service("ratings", hosts="ratings", gateways=[1])
    body = invalid(custom, obj)
    assert body["message"].startswith(
        'VirtualService.networking.istio.io "ratings" is invalid: [spec.gateways[0]: '
    )
    assert len(body["details"]["causes"]) == 2


def test_cel_duration_below_one_millisecond(custom) -> None:
    body = invalid(
        custom, with_fault({"delay": {"fixedDelay": "0.5ms", "percentage": {"value": 100}}})
    )
    assert body["message"] == (
        'VirtualService.networking.istio.io "ratings" is invalid:'
        ' spec.http[0].fault.delay.fixedDelay: Invalid value: "string":'
        " must be a valid duration greater than 1ms"
    )
    assert body["details"]["causes"][0]["field"] == "spec.http[0].fault.delay.fixedDelay"


def test_cel_evaluation_error_is_422_not_500(custom) -> None:
    body = invalid(custom, with_fault({"delay": {"fixedDelay": "5", "percentage": {"value": 100}}}))
    assert (
        'time: missing unit in duration "5" evaluating rule: must be a valid duration'
        in body["message"]
    )


def test_cel_port_range_on_a_service_entry(custom) -> None:
    entry = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": "external"},
        "spec": {
            "hosts": ["example.com"],
            "ports": [{"number": 70000, "name": "http", "protocol": "HTTP"}],
        },
    }
    body = invalid(custom, entry, "serviceentries")
    assert body["details"]["causes"][0]["field"] == "spec.ports[0].number"
    assert (
        body["details"]["causes"][0]["message"]
        == 'Invalid value: "integer": port must be between 1-65535'
    )


def test_cel_wildcard_label_in_a_selector(custom) -> None:
    rule = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "reviews"},
        "spec": {"host": "reviews", "workloadSelector": {"matchLabels": {"app": "rev*"}}},
    }
    body = invalid(custom, rule, "destinationrules")
    assert "wildcard not allowed in label value match" in body["message"]


def test_destination_rule_port_70000_passes_the_crd(server: ApiServer) -> None:
    """The CRD bounds portLevelSettings ports as uint32; only Istio's webhook rejects 70000."""
    rule = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {
            "host": "reviews",
            "trafficPolicy": {"portLevelSettings": [{"port": {"number": 70000}}]},
        },
    }
    plain = ApiServer(crd_paths=[ISTIO_CRDS], webhook=lambda kind, obj: Review())
    assert (
        plain.create(rule)["spec"]["trafficPolicy"]["portLevelSettings"][0]["port"]["number"]
        == 70000
    )


def test_the_webhook_runs_after_schema_validation(custom) -> None:
    """The double's own port of Istio's webhook answers as a cluster does: 400, no reason."""
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(
            *VS, with_fault({"abort": {"httpStatus": 700, "percentage": {"value": 100}}})
        )
    assert caught.value.status == 400
    body = status_body(caught.value)
    assert body["message"] == (
        'admission webhook "validation.istio.io" denied the request: configuration is invalid: '
        "HTTP status 700 is not in range 200-599"
    )
    assert "reason" not in body


def test_an_injected_webhook_sees_kind_and_pruned_object() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def webhook(kind: str, obj: dict[str, Any]) -> Review:
        seen.append((kind, obj))
        if obj["spec"].get("gateways"):
            return Review("configuration is invalid: first reason; second reason")
        return Review()

    server = ApiServer(crd_paths=[ISTIO_CRDS], webhook=webhook)
    obj = virtual_service()
    obj["spec"]["typo"] = 1
    server.create(obj)
    assert seen[0][0] == "VirtualService"
    assert "typo" not in seen[0][1]["spec"]
    with pytest.raises(ApiError) as caught:
        server.patch(
            "networking.istio.io/v1",
            "VirtualService",
            "default",
            "reviews",
            {"spec": {"gateways": ["x"]}},
        )
    assert caught.value.status == 400
    assert caught.value.message.endswith("configuration is invalid: first reason; second reason")
    assert (
        "gateways"
        not in server.get("networking.istio.io/v1", "VirtualService", "default", "reviews")["spec"]
    )


def test_permissive_fallback_keeps_everything() -> None:
    server = ApiServer(webhook=lambda kind, obj: Review())
    obj = virtual_service()
    obj["spec"]["anything"] = {"goes": True}
    assert server.create(obj)["spec"]["anything"] == {"goes": True}


def test_every_cel_rule_in_the_istio_crds_compiles_and_evaluates() -> None:
    """Each rule yields a bool for some sample value: every function it calls is available."""
    rules = {
        text
        for rt in load_crds([ISTIO_CRDS])
        for schema in rt.schemas.values()
        for text in schema.rules
    }
    assert len(rules) >= 36
    samples = ["10ms", "unix:///run/sock", "http://example.com", 80, {"app": "x"}, {"8080": {}}]
    samples += [[{"number": 80}], {}]
    for text in rules:
        rule = CelRule.compile(text)
        assert rule is CelRule.compile(text)  # compiled once, then cached
        results = []
        for value in samples:
            try:
                results.append(rule.evaluate(value))
            except Exception:  # a sample of the wrong type for this rule
                continue
        assert any(isinstance(r, celtypes.BoolType) for r in results), text


@pytest.mark.parametrize(
    ("rule", "value", "holds"),
    [
        ('url(self).getScheme() in ["http", "https"]', "https://issuer.example.com/jwks", True),
        ('url(self).getScheme() in ["http", "https"]', "ftp://issuer.example.com", False),
        (
            'isURL(self) ? (url(self).getScheme() in ["", "http", "https", "oci", "file"])'
            ' : (isURL("http://" + self) && url("http://" + self).getScheme() in ["", "http"])',
            "ghcr.io/istio/wasm:1",
            True,
        ),
        (
            UNIX_SOCKET_RULE,
            "unix:///sock",
            True,
        ),
        (
            UNIX_SOCKET_RULE,
            "unix://sock",
            False,
        ),
        (
            "self.all(l1, self.exists_one(l2, l1.number == l2.number))",
            [{"number": 80}, {"number": 80}],
            False,
        ),
        ("self.all(key, 0 < int(key) && int(key) <= 65535)", {"8080": {}}, True),
        ("duration(self) >= duration('1ms')", "1h2m3.5s", True),
    ],
)
def test_kubernetes_cel_extensions(rule: str, value: Any, holds: bool) -> None:
    assert bool(CelRule.compile(rule).evaluate(value)) is holds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("1ms", timedelta(milliseconds=1)),
        ("0.5ms", timedelta(microseconds=500)),
        ("1h2m3s", timedelta(hours=1, minutes=2, seconds=3)),
        ("-1.5s", timedelta(seconds=-1.5)),
        ("250us", timedelta(microseconds=250)),
    ],
)
def test_go_durations(text: str, expected: timedelta) -> None:
    assert parse_go_duration(text) == expected


@pytest.mark.parametrize("text", ["5", "", "1d", "ms", "1.2.3s", "s5"])
def test_invalid_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="time: "):
        parse_go_duration(text)
