"""`chaosmesh local up` runs Prometheus beside the mesh, and the istio_* probes read it.

The mesh is started as a user starts it (the CLI, a state directory and kubeconfig of the
test's own). Prometheus must be scraping the mesh when `up` returns, listen on 127.0.0.1 only,
keep its data in the state directory, come back when it dies, and stop with `down`. The
Chaos Toolkit probes ``istio_request_rate``, ``istio_error_ratio`` and ``istio_latency_p99_ms``
are then asked, with an empty ``prometheus_url`` (an unset ``${PROMETHEUS_URL}``: the mesh's
own, found through its ConfigMap), about steady traffic from the ``sleep`` workload before,
during and after real faults. Bounds, and why:

- details' request rate 100/s +- 30 %: the traffic's pace, over a 5 s window (``rate``
  extrapolates from the samples inside it, one a second).
- details' error ratio under a 30 % abort: 0.30 +- 0.08 over 5 s (~500 requests: the binomial
  spread is 2 points, so 8 is 4 sigma); exactly 0 before and after.
- ratings' p99 under a 200 ms delay: in (100, 250], the Istio bucket holding 200 ms, within
  which ``histogram_quantile`` interpolates; under 100 ms before and after (1-10 ms requests).
  Histograms reach Prometheus at Envoy's stats flush (5 s): the window is 8 s.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.faults.actions import inject_abort, inject_delay
from chaosmesh_py.faults.rollbacks import remove_faults
from chaosmesh_py.kube import Kube
from chaosmesh_py.localmesh import prometheus as local_prometheus
from chaosmesh_py.observe.probes import istio_error_ratio, istio_latency_p99_ms, istio_request_rate
from tests.conftest import ISTIO_CRDS
from tests.local.load import Traffic

pytestmark = pytest.mark.slow

CHAOSMESH = str(Path(sys.executable).parent / "chaosmesh")
FIRST_SCRAPE_LIMIT_S = 15  # ~5-6 s measured: Prometheus applies new targets every 5 s
ERROR_WINDOW_S, LATENCY_WINDOW_S = 5, 8
PHASE_TIMEOUT_S = 30


def chaosmesh(work, *arguments, env=None, check=True):
    files = ["--state-dir", str(work / "state")]
    if arguments[0] in ("up", "down"):
        files += ["--kubeconfig", str(work / "kubeconfig")]
    done = subprocess.run(
        [CHAOSMESH, "local", *arguments, *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "CHAOSMESH_ISTIO_CRDS": str(ISTIO_CRDS), **(env or {})},
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def status_of(work):
    return json.loads(chaosmesh(work, "status", "--json", check=False).stdout)


def prometheus_pid(daemon_pid):
    """The daemon's child running prometheus (found by parent, as ps would)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if int(fields[1]) == daemon_pid and command.endswith(b"prometheus"):
            return int(stat.parent.name)
    return None


def listening(url):
    parts = urlsplit(url)
    with socket.socket() as probe:
        return probe.connect_ex((parts.hostname, parts.port)) == 0


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("local-prometheus")
    started = time.monotonic()
    printed = chaosmesh(work, "up").stdout
    print(f"\n`local up` with Prometheus took {time.monotonic() - started:.1f} s")
    (work / "up.txt").write_text(printed)
    yield work
    chaosmesh(work, "down", check=False)


@pytest.fixture
def on_the_mesh(work, monkeypatch):
    """This process reaches the mesh as `up` printed (its kubeconfig and context)."""
    monkeypatch.setenv("KUBECONFIG", str(work / "kubeconfig"))
    monkeypatch.setenv("KUBERNETES_CONTEXT", "chaosmesh-local")
    monkeypatch.delenv("PROMETHEUS_URL", raising=False)
    return status_of(work)


def test_up_starts_prometheus_scraping_the_mesh_and_says_where(work, on_the_mesh):
    status = on_the_mesh
    prometheus = status["prometheus"]
    url = prometheus["url"]
    assert url.startswith("http://127.0.0.1:")
    assert 0 < prometheus["first_scrape_s"] <= FIRST_SCRAPE_LIMIT_S
    assert prometheus["scrape_interval_s"] == 1.0
    printed = (work / "up.txt").read_text()
    assert f"prometheus: {url} (scrapes the mesh every 1.0 s; first scrape after" in printed
    assert f"PROMETHEUS_URL={url}" in printed  # in the `export` line experiments need

    # Scraping the mesh's Istio metrics, every second, and nothing else.
    (target,) = requests.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
    assert target["scrapeUrl"] == status["metrics_url"]
    assert target["health"] == "up"
    assert target["scrapeInterval"] == "1s"
    # 127.0.0.1 only, and its data in the state directory (`down` removes it).
    flags = requests.get(f"{url}/api/v1/status/flags", timeout=5).json()["data"]
    assert flags["web.listen-address"] == f"127.0.0.1:{urlsplit(url).port}"
    assert Path(flags["storage.tsdb.path"]).is_relative_to(work / "state")
    assert Path(prometheus["log"]).is_relative_to(work / "state")
    answer = requests.get(
        f"{url}/api/v1/query", params={"query": "istio_requests_total"}, timeout=5
    )
    assert answer.json()["status"] == "success"

    # The mesh's ConfigMap carries it: the product finds it through the API, as any client.
    mesh = Kube.connect().local_mesh()
    assert mesh["prometheus"]["url"] == url
    configmap = subprocess.run(
        [
            *("kubectl", "--context", "chaosmesh-local", "-n", "istio-system"),
            *("get", "configmap", "chaosmesh-local-mesh", "-o", "jsonpath={.data.mesh\\.json}"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(configmap.stdout)["prometheus"]["url"] == url


def test_the_istio_probes_read_real_faults_through_the_meshs_prometheus(on_the_mesh):
    status = on_the_mesh
    sleep = status["workloads"]["sleep"]["sidecar_url"]
    host = {name: {"Host": service["host"]} for name, service in status["services"].items()}
    run = {"chaosmesh_run_id": f"localprom{os.getpid()}"}

    def read():
        # Exactly as an experiment asks, with ${PROMETHEUS_URL} unset: prometheus_url "".
        return {
            "details_rate": istio_request_rate("", "details", "bookinfo", f"{ERROR_WINDOW_S}s"),
            "details_errors": istio_error_ratio("", "details", "bookinfo", f"{ERROR_WINDOW_S}s"),
            "ratings_p99": istio_latency_p99_ms("", "ratings", "bookinfo", f"{LATENCY_WINDOW_S}s"),
        }

    def wait_for(what, since, ready):
        """The first reading, LATENCY_WINDOW_S after ``since`` (every window then holds only
        this phase), for which ``ready`` holds."""
        time.sleep(max(0.0, since + LATENCY_WINDOW_S - time.time()))
        deadline = time.monotonic() + PHASE_TIMEOUT_S
        while True:
            reading = read()
            if ready(reading) or time.monotonic() > deadline:
                print(f"{what}: {reading}")
                return reading
            time.sleep(0.5)

    with (
        Traffic(f"{sleep}/details/0", host["details"], rate_per_s=100),
        Traffic(f"{sleep}/ratings/0", host["ratings"], rate_per_s=50),
    ):
        baseline = wait_for(
            "baseline", time.time(), lambda r: r["details_rate"] > 70 and r["ratings_p99"] > 0
        )
        try:
            details = {"virtual_service": "details", "namespace": "bookinfo"}
            ratings = {"virtual_service": "ratings", "namespace": "bookinfo"}
            inject_abort(http_status=503, percentage=30, configuration=run, **details)
            inject_delay(fixed_delay="200ms", percentage=100, configuration=run, **ratings)
            faulted = wait_for("faulted", time.time(), lambda r: r["ratings_p99"] > 100)
        finally:
            removed = remove_faults(configuration=run)
        after = wait_for("after", time.time(), lambda r: 0 < r["ratings_p99"] < 100)

    assert {entry["virtual_service"] for entry in removed} == {
        "bookinfo/details",
        "bookinfo/ratings",
    }
    for reading in (baseline, faulted, after):
        assert 70 <= reading["details_rate"] <= 130, reading
    assert baseline["details_errors"] == after["details_errors"] == 0.0
    assert abs(faulted["details_errors"] - 0.30) <= 0.08
    assert 0 < baseline["ratings_p99"] < 100
    assert 100 < faulted["ratings_p99"] <= 250
    assert 0 < after["ratings_p99"] < 100


def test_a_prometheus_that_dies_is_restarted_at_the_same_url(work, on_the_mesh):
    url = on_the_mesh["prometheus"]["url"]
    first = prometheus_pid(on_the_mesh["pid"])
    assert first is not None
    os.kill(first, signal.SIGKILL)  # the process our own `up` started
    deadline = time.monotonic() + 20
    while not (listening(url) and prometheus_pid(on_the_mesh["pid"]) not in (None, first)):
        assert time.monotonic() < deadline, "prometheus was not restarted"
        time.sleep(0.2)
    assert status_of(work)["prometheus"]["url"] == url
    # Its data survived: the series scraped before the kill are still there.
    found = requests.get(
        f"{url}/api/v1/series",
        params={"match[]": "istio_requests_total", "start": time.time() - 300},
        timeout=5,
    )
    assert found.json()["data"]


def test_down_stops_prometheus_and_removes_its_data(work, on_the_mesh):
    url = on_the_mesh["prometheus"]["url"]
    pid = prometheus_pid(on_the_mesh["pid"])
    chaosmesh(work, "down")
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert not listening(url)
    assert not (work / "state").exists()


def test_without_prometheus_installed_status_says_why_and_the_probes_name_the_field(
    tmp_path, monkeypatch
):
    # No prometheus on PATH: only the virtualenv's scripts (chaosmesh itself).
    path = {"PATH": str(Path(sys.executable).parent), "CHAOSMESH_PROMETHEUS": ""}
    printed = chaosmesh(tmp_path, "up", env=path).stdout
    try:
        status = status_of(tmp_path)
        assert status["prometheus"]["url"] is None
        reason = status["prometheus"]["reason"]
        assert "prometheus is not installed: apt-get install prometheus" in reason
        assert f"prometheus: none ({reason})" in printed
        assert "PROMETHEUS_URL" not in printed

        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
        monkeypatch.setenv("KUBERNETES_CONTEXT", "chaosmesh-local")
        # The field, the reason and the fix; as Chaos Toolkit reports an activity's failure.
        expected = "prometheus_url: is empty, and the local mesh runs no Prometheus: prometheus is"
        with pytest.raises(ActivityFailed, match=expected):
            istio_error_ratio("", "ratings", "bookinfo")
    finally:
        chaosmesh(tmp_path, "down")


def test_a_misnamed_binary_and_a_refused_prometheus_are_reasons_not_crashes(tmp_path):
    with pytest.raises(local_prometheus.PrometheusUnavailable, match="is not an executable file"):
        local_prometheus.find_binary({"CHAOSMESH_PROMETHEUS": str(tmp_path / "none")})
    found = local_prometheus.find_binary({"PATH": os.environ["PATH"]})
    # A configuration it refuses: Prometheus exits at once, its own words in the error.
    server = local_prometheus.Prometheus(found, tmp_path, ["http://127.0.0.1:1/metrics"], 1)
    server.scrape_interval_s = -1
    with pytest.raises(local_prometheus.PrometheusFailed, match="prometheus exited with"):
        server.start()
    assert server.pid is None
    config = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    assert config["scrape_configs"][0]["static_configs"] == [{"targets": ["127.0.0.1:1"]}]
