"""Istio's Bookinfo fault-injection task on the local mesh, judged by the steady-state probe."""

import json
import subprocess
import sys

import pytest

from chaosmesh_py.faults.actions import inject_abort, inject_delay
from chaosmesh_py.faults.rollbacks import remove_faults
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def page(mesh, user=None):
    """What probes/bookinfo_page.py reports for ``user``, through the ingress gateway."""
    command = [sys.executable, str(ROOT / "probes/bookinfo_page.py"), mesh.info()["ingress_url"]]
    if user:
        command += ["--user", user]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, json.loads(done.stdout)


def ratings_fault(action, configuration, **arguments):
    return action(
        virtual_service="ratings",
        namespace="bookinfo",
        percentage=100,
        headers={"end-user": "jason"},
        configuration=configuration,
        **arguments,
    )


def test_a_7s_ratings_delay_breaks_jasons_page_and_only_his(mesh, configuration):
    assert page(mesh, "jason")[0] == 0
    report = ratings_fault(inject_delay, configuration, fixed_delay="7s")
    assert report["effect"]["traffic"].startswith("1 request")

    code, jason = page(mesh, "jason")
    assert code == 1
    assert jason["errors"] == ["reviews"]
    assert 5.5 <= jason["seconds"] <= 7.5  # productpage's 3 s timeout, tried twice
    code, anonymous = page(mesh)
    assert code == 0, anonymous

    removed = remove_faults(
        virtual_service="ratings", namespace="bookinfo", configuration=configuration
    )
    assert removed[0]["effect"]["config_s"] < 1
    assert page(mesh, "jason")[0] == 0


def test_a_ratings_abort_shows_jason_the_ratings_error(mesh, configuration):
    ratings_fault(inject_abort, configuration, http_status=500)
    code, jason = page(mesh, "jason")
    assert code == 1
    assert jason["errors"] == ["ratings"]
    assert page(mesh, "mary")[0] == 0
    remove_faults(virtual_service="ratings", namespace="bookinfo", configuration=configuration)
    assert page(mesh, "jason")[0] == 0
