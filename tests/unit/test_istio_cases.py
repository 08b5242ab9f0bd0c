"""The project's own validation against Istio's cases, for every subject it validates.

What the project writes (faults, header and source-label narrowings, route copies, timeouts,
retries, destinations and weights) must be refused exactly where Istio refuses it, and may be
refused more only where the data says why (Envoy or HTTP refusing it too).
"""

import pytest

from chaosmesh_py.istio.validation import admission_errors
from tests.istio_cases import CASES, DOCUMENT, PRODUCT_CASES, IstioCase, params, per_subject


@pytest.mark.parametrize("case", params(PRODUCT_CASES))
def test_the_project_agrees_with_istio(case: IstioCase) -> None:
    errors = admission_errors("VirtualService", case.virtual_service())
    assert (errors == []) is case.product_valid, errors or "admitted"


def test_every_subject_is_validated_or_out_of_scope_with_a_reason() -> None:
    scope = DOCUMENT["product_scope"]
    subjects = set(per_subject(CASES))
    assert subjects == set(scope["validated"]) | set(scope["not_validated"])
    assert not set(scope["validated"]) & set(scope["not_validated"])
    assert all(len(why) > 20 for why in scope["not_validated"].values())


def test_the_table_is_the_one_taken_from_istio() -> None:
    assert len(CASES) == 407
    assert len({case.id for case in CASES}) == len(CASES)
    assert all(case.source.startswith("pkg/config/validation/") for case in CASES)
    # Every stricter verdict of the project says why.
    stricter = [c for c in DOCUMENT["cases"] if c.get("product", {}).get("valid") is not None]
    assert stricter and all(c["product"]["why"] for c in stricter)
    assert len(PRODUCT_CASES) == 231  # the 407 less the subjects and cases out of scope
