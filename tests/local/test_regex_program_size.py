"""The local Envoy loads every regex the project lets through: Istio's bootstrap raises RE2's
program size limit (runtime re2.max_program_size.error_level) from Envoy's 100 to 32768, and the
project refuses anything larger before writing it."""

from chaosmesh_py.faults.actions import inject_abort
from chaosmesh_py.faults.rollbacks import remove_faults
from chaosmesh_py.istio import grammar
from tests.local.conftest import through_sidecar
from tests.local.load import burst


def test_a_narrowing_with_a_program_over_envoys_default_takes_effect(mesh, configuration):
    pattern = r"j\pL{27}"  # an RE2 program of size 32297, just within Istio's 32768
    assert grammar.regex_problem(pattern) is None
    assert grammar.regex_problem(r"j\pL{28}") is not None  # 33493
    report = inject_abort(
        virtual_service="ratings",
        namespace="bookinfo",
        http_status=503,
        percentage=100,
        headers={"end-user": {"regex": pattern}},
        configuration=configuration,
    )
    try:
        assert report["routes"]
        url, headers = through_sidecar(mesh, "ratings", "/ratings/0")
        matching = "j" + "a" * 27
        assert {r.status for r in burst(url, 5, headers={**headers, "end-user": matching})} == {503}
        assert {r.status for r in burst(url, 5, headers={**headers, "end-user": "jason"})} == {200}
    finally:
        remove_faults(configuration=configuration)
