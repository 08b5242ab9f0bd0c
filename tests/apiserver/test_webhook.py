"""The double's webhook answers as istiod's does, beyond the verdicts of Istio's case table:
the message of a denial, warnings on an accepted object, DestinationRules, and input that
does not even decode."""

from __future__ import annotations

from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from chaosmesh_py.localmesh.apiserver import ApiServer
from tests.apiserver.conftest import NETWORKING, raw, status_body, virtual_service

DENIED = 'admission webhook "validation.istio.io" denied the request: '


def refused(custom: kubernetes.client.CustomObjectsApi, plural: str, obj: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(*NETWORKING, "default", plural, obj)
    assert caught.value.status == 400, caught.value.body
    body = status_body(caught.value)
    assert "reason" not in body  # the API server passes no reason on for a webhook's denial
    message: str = body["message"]
    assert message.startswith(DENIED)
    return message.removeprefix(DENIED)


def test_several_reasons_read_as_istios_multierror(custom) -> None:
    obj = virtual_service("ratings")
    obj["spec"]["http"][0] |= {
        "fault": {"abort": {"httpStatus": 700}},
        "retries": {"attempts": 0, "retryOn": "5xx, reset"},
    }
    assert refused(custom, "virtualservices", obj) == (
        "configuration is invalid: 3 errors occurred:\n"
        "\t* HTTP status 700 is not in range 200-599\n"
        "\t* http retry policy configured when attempts are set to 0 (disabled)\n"
        '\t* " reset" is not a valid retryOn policy\n\n'
    )


def test_a_regex_is_refused_in_gos_words(custom) -> None:
    obj = virtual_service("ratings")
    obj["spec"]["http"][0]["match"] = [{"headers": {"end-user": {"regex": "(?=jason)jason"}}}]
    assert refused(custom, "virtualservices", obj) == (
        'configuration is invalid: "headers": error parsing regexp: invalid or unsupported Perl '
        "syntax: `(?=`; Istio uses RE2 style regex-based match "
        "(https://github.com/google/re2/wiki/Syntax)"
    )


def test_warnings_come_back_as_warning_headers_on_an_accepted_object(custom) -> None:
    """A fault copy put before a catch-all: Istio warns about the later catch-all's twin."""
    obj = virtual_service("ratings")
    obj["spec"]["http"].append({"name": "again", "route": [{"destination": {"host": "ratings"}}]})
    _, status, headers = custom.create_namespaced_custom_object_with_http_info(
        *NETWORKING, "default", "virtualservices", obj
    )
    assert status == 201
    assert headers.getlist("Warning") == [
        '299 - "virtualService rule \\"again\\" not used (only the last rule can have no matches)"'
    ]


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"trafficPolicy": {}}, "traffic policy must have at least one field"),
        (
            {"subsets": [{"name": "v1"}, {"name": "v1"}]},
            "duplicate subset names: v1",
        ),
        (
            {"trafficPolicy": {"outlierDetection": {"maxEjectionPercent": 120}}},
            "percentage 120 is not in range 0..100",
        ),
        (
            {"trafficPolicy": {"outlierDetection": {"interval": "1500us"}}},
            "only durations to ms precision are supported",
        ),
        (
            {"trafficPolicy": {"connectionPool": {"http": {"http2MaxRequests": -1}}}},
            "http2 max requests must be non-negative",
        ),
        (
            {"trafficPolicy": {"loadBalancer": {"consistentHash": {"maglev": {"tableSize": 10}}}}},
            "tableSize must be a prime number for maglev",
        ),
        ({"subsets": [{"name": "v_1"}]}, "subset name is invalid: v_1"),
        (
            {
                "trafficPolicy": {
                    "loadBalancer": {
                        "localityLbSetting": {"distribute": [{"from": "a/*", "to": {"b": 60}}]}
                    }
                }
            },
            "total locality weight 60 != 100",
        ),
        (
            {
                "trafficPolicy": {
                    "loadBalancer": {
                        "localityLbSetting": {"failover": [{"from": "eu", "to": "eu"}]}
                    },
                    "outlierDetection": {"consecutive5xxErrors": 1},
                }
            },
            "locality lb failover settings must specify different regions",
        ),
    ],
)
def test_destination_rules_are_checked_too(custom, spec: dict[str, Any], reason: str) -> None:
    rule = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "reviews"},
        "spec": {"host": "reviews", **spec},
    }
    assert reason in refused(custom, "destinationrules", rule)


def test_a_deprecated_outlier_setting_is_a_warning(custom) -> None:
    rule = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "reviews"},
        "spec": {
            "host": "reviews",
            "trafficPolicy": {"outlierDetection": {"consecutiveErrors": 5}},
        },
    }
    _, _, headers = custom.create_namespaced_custom_object_with_http_info(
        *NETWORKING, "default", "destinationrules", rule
    )
    assert "consecutive errors is deprecated" in headers["Warning"]


def test_istios_dry_run_annotation_is_refused_on_a_virtual_service(custom) -> None:
    obj = virtual_service("ratings")
    obj["metadata"]["annotations"] = {"istio.io/dry-run": "true"}
    assert refused(custom, "virtualservices", obj) == (
        "configuration is invalid: default/ratings has unsupported annotation istio.io/dry-run, "
        "please remove the annotation"
    )


def test_without_crds_a_value_of_the_wrong_type_is_a_decoding_error_not_a_crash() -> None:
    """With no schema in front, the webhook decodes as istiod does and says what failed."""
    server = ApiServer()
    obj = virtual_service("ratings")
    obj["spec"]["http"][0]["timeout"] = 5
    with server:
        status, _, body = raw(
            server,
            "POST",
            "/apis/networking.istio.io/v1/namespaces/default/virtualservices",
            obj,
            {"Content-Type": "application/json"},
        )
    assert status == 400
    assert body["message"] == (
        f"{DENIED}error decoding configuration: spec.http[0].timeout: bad Duration: 5"
    )
