"""Istio's validation cases for VirtualService HTTP routes, from tests/data/.

Each case is a complete VirtualService spec with Istio's verdict and the Istio source it comes
from. Two implementations are held to them: the project's own checks of what it writes (for the
subjects it validates, ``product_scope``) and the API double's port of Istio's webhook (all).
"""

from __future__ import annotations

import base64
import copy
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import ROOT

CASES_FILE = ROOT / "tests/data/istio_virtualservice_cases.json"
DOCUMENT: dict[str, Any] = json.loads(CASES_FILE.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class IstioCase:
    id: str
    subject: str
    source: str
    valid: bool  # Istio's verdict
    warning: bool  # whether Istio returns a warning with the (accepted) object
    spec: dict[str, Any]
    # The project's expected verdict, or None when it does not validate what the case is about.
    product_valid: bool | None

    def virtual_service(self, name: str = "cases", namespace: str = "default") -> dict[str, Any]:
        return {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": name, "namespace": namespace},
            "spec": copy.deepcopy(self.spec),
        }


def _expanded(spec: dict[str, Any], expand: dict[str, Any]) -> dict[str, Any]:
    """The spec with its elided long string written out (a 2 MiB body is not kept in the file)."""
    spec = copy.deepcopy(spec)
    *parents, last = expand["pointer"].strip("/").split("/")
    node: Any = spec
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    text = expand["char"] * expand["count"]
    node[last] = (
        base64.b64encode(text.encode()).decode() if expand["encoding"] == "base64" else text
    )
    return spec


def _product_valid(case: dict[str, Any]) -> bool | None:
    product = case.get("product", {})
    if "scope" in product or case["subject"] not in DOCUMENT["product_scope"]["validated"]:
        return None
    return bool(product.get("valid", case["valid"]))


CASES = [
    IstioCase(
        id=case["id"],
        subject=case["subject"],
        source=case["source"],
        valid=case["valid"],
        warning=case["warning"],
        spec=_expanded(case["spec"], case["expand"]) if "expand" in case else case["spec"],
        product_valid=_product_valid(case),
    )
    for case in DOCUMENT["cases"]
]
PRODUCT_CASES = [case for case in CASES if case.product_valid is not None]


def params(cases: list[IstioCase]) -> list[Any]:
    return [pytest.param(case, id=case.id) for case in cases]


def per_subject(cases: list[IstioCase]) -> Counter[str]:
    return Counter(case.subject for case in cases)
