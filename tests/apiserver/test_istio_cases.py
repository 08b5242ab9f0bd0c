"""The API double's webhook against Istio's cases: all 407, directly and over HTTP.

The double is the reference the product is tested against, so it is held to Istio's verdicts
itself: its port of the webhook gives each case Istio's verdict and warnings, and a create through
the real ``kubernetes`` client is refused (400 from the webhook, or 422 from the CRD schema and
CEL rules that a cluster checks first) exactly when Istio refuses the case, with Istio's warnings
as ``Warning`` headers when it is accepted.

Two kinds of case cannot reach a webhook on a cluster, and are checked for what a cluster does
instead: a JSON null as a list element or map value (the Go tests' nil pointers), which the API
server refuses or drops first; and a field the served CRDs (Istio 1.30.3) do not have yet, which
the API server would prune, so it is sent with fieldValidation=Strict and refused by name.
"""

from __future__ import annotations

import json
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from chaosmesh_py.localmesh.apiserver.webhook import review
from chaosmesh_py.localmesh.apiserver.webhook.proto import DecodeError, Message
from chaosmesh_py.localmesh.apiserver.webhook.virtualservice import validate_virtual_service
from tests.apiserver.conftest import NETWORKING
from tests.istio_cases import CASES, IstioCase, params

DENIED = 'admission webhook "validation.istio.io" denied the request: configuration is invalid: '
# Fields of the cases (Istio master) that Istio 1.30.3's VirtualService CRD does not have.
NOT_IN_THE_SERVED_CRDS = ("prefixRewrite",)


def _has_null_element(value: Any) -> bool:
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return any(item is None or _has_null_element(item) for item in items)


def _newer_fields(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [key for key in value if key in NOT_IN_THE_SERVED_CRDS]
        return own + [f for item in value.values() for f in _newer_fields(item)]
    if isinstance(value, list):
        return [f for item in value for f in _newer_fields(item)]
    return []


NULL_CASES = [case for case in CASES if _has_null_element(case.spec)]
NEWER_CASES = [case for case in CASES if _newer_fields(case.spec)]
HTTP_CASES = [case for case in CASES if case not in NULL_CASES + NEWER_CASES]


@pytest.mark.parametrize("case", params(CASES))
def test_the_webhook_port_gives_istios_verdict(case: IstioCase) -> None:
    try:
        verdict = validate_virtual_service(Message(case.spec), "default", {})
    except DecodeError:  # e.g. a port of -1: not a uint32, refused before validation
        assert not case.valid
        return
    assert (verdict.err is None) is case.valid, str(verdict.err)
    assert (verdict.warning is not None) is case.warning, str(verdict.warning)


@pytest.mark.parametrize("case", params(HTTP_CASES))
def test_a_create_through_the_kubernetes_client_gets_istios_verdict(
    custom: kubernetes.client.CustomObjectsApi, case: IstioCase
) -> None:
    try:
        _, status, headers = custom.create_namespaced_custom_object_with_http_info(
            *NETWORKING, "default", "virtualservices", case.virtual_service(), dry_run="All"
        )
    except ApiException as refused:
        assert not case.valid, refused.body
        body = json.loads(refused.body)
        if refused.status == 400:
            assert body["message"].startswith(DENIED), body
        else:  # the CRD schema or a CEL rule, which a cluster checks before the webhook
            assert refused.status == 422, body
            assert review("VirtualService", case.virtual_service()).denial, "schema only"
        return
    assert case.valid, f"admitted with status {status}"
    warnings = [w for w in headers.getlist("Warning") if "unknown field" not in w]
    assert bool(warnings) is case.warning, warnings


@pytest.mark.parametrize("case", params(NULL_CASES))
def test_a_null_element_never_reaches_the_webhook(
    custom: kubernetes.client.CustomObjectsApi, case: IstioCase
) -> None:
    """The API server handles it first: a null list element fails the schema (422), a null
    map value of a non-nullable schema is dropped."""
    try:
        stored = custom.create_namespaced_custom_object(
            *NETWORKING, "default", "virtualservices", case.virtual_service(), dry_run="All"
        )
    except ApiException as refused:
        assert refused.status == 422
        assert 'must be of type object: "null"' in json.loads(refused.body)["message"]
        return
    assert not _has_null_element(stored["spec"])


@pytest.mark.parametrize("case", params(NEWER_CASES))
def test_a_field_the_served_crds_lack_is_refused_by_name_in_strict_mode(
    custom: kubernetes.client.CustomObjectsApi, case: IstioCase
) -> None:
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object(
            *NETWORKING,
            "default",
            "virtualservices",
            case.virtual_service(),
            dry_run="All",
            field_validation="Strict",
        )
    assert refused.value.status == 400
    message = json.loads(refused.value.body)["message"]
    assert all(
        f'unknown field "spec.http[0].redirect.{f}"' in message for f in NOT_IN_THE_SERVED_CRDS
    )


def test_every_case_is_sent_over_http() -> None:
    assert len(HTTP_CASES) + len(NULL_CASES) + len(NEWER_CASES) == len(CASES) == 407
    assert (len(NULL_CASES), len(NEWER_CASES)) == (18, 8)
