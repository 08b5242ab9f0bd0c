"""The Envoy runner against a real Envoy and real upstreams: start, live changes, refusals, stop.

Every configuration here is written by hand (no translator): one listener whose connection
manager reads route config ``r1`` from its file, the fault filter (an empty ``HTTPFault``, as
istiod writes it) then the router, and STATIC clusters to tiny upstreams answering their name.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from chaosmesh_py.engine.envoy_admin import EnvoyAdmin
from chaosmesh_py.localmesh.envoy import (
    ConfigRejected,
    Envoy,
    EnvoyConfig,
    EnvoyError,
    EnvoyStartFailed,
)

HCM = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    "HttpConnectionManager"
)
FAULT = "envoy.filters.http.fault"
HTTP_FAULT = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
STAT_PREFIX = "outbound_test"
ABORT_STATUS = 500


# -- upstreams -----------------------------------------------------------------------------------


class _Upstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(("127.0.0.1", 0), _Handler)
        self.thread = threading.Thread(
            target=self.serve_forever, args=(0.05,), name=f"upstream-{name}"
        )

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # Envoy resetting a pooled connection at its stop is not an error here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Envoy's connection pool expects
    disable_nagle_algorithm = True  # otherwise a 40 ms Nagle stall per response (envoy.md)
    server: _Upstream

    def do_GET(self) -> None:
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, _Upstream]]:
    servers = {name: _Upstream(name) for name in ("a", "b")}
    for server in servers.values():
        server.thread.start()
    yield servers
    for server in servers.values():
        server.shutdown()
        server.server_close()
        server.thread.join()


# -- configuration built by hand -----------------------------------------------------------------


def listener(envoy: Envoy, port: int = 0, name: str = "l1", route: str = "r1") -> dict[str, Any]:
    manager = {
        "@type": HCM,
        "stat_prefix": STAT_PREFIX,
        "rds": {"route_config_name": route, "config_source": envoy.rds_config_source(route)},
        "http_filters": [
            {"name": FAULT, "typed_config": {"@type": HTTP_FAULT}},
            {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}},
        ],
    }
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": manager,
                    }
                ]
            }
        ],
    }


def cluster(name: str, port: int, **extra: Any) -> dict[str, Any]:
    endpoint = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": endpoint}]}],
        },
        **extra,
    }


def route_config(
    cluster_name: str = "a", abort_status: int | None = None, name: str = "r1"
) -> dict[str, Any]:
    route: dict[str, Any] = {"match": {"prefix": "/"}, "route": {"cluster": cluster_name}}
    if abort_status is not None:
        route["typed_per_filter_config"] = {
            FAULT: {
                "@type": HTTP_FAULT,
                "abort": {"http_status": abort_status, "percentage": {"numerator": 100}},
            }
        }
    return {
        "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        "name": name,
        "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [route]}],
    }


def mesh_config(envoy: Envoy, upstreams: dict[str, _Upstream], **routes: Any) -> EnvoyConfig:
    """One listener, cluster ``a``, and route config ``r1`` built from ``routes``."""
    return EnvoyConfig(
        listeners=(listener(envoy),),
        clusters=(cluster("a", upstreams["a"].port),),
        route_configs={"r1": route_config(**routes)},
    )


@pytest.fixture
def envoy(tmp_path: Path, upstreams: dict[str, _Upstream]) -> Iterator[Envoy]:
    with Envoy(tmp_path / "envoy") as running:
        running.start(mesh_config(running, upstreams))
        yield running


@pytest.fixture
def client(envoy: Envoy) -> Iterator[http.client.HTTPConnection]:
    """A keep-alive connection to the listener, opened before the test changes anything."""
    connection = http.client.HTTPConnection("127.0.0.1", envoy.listener_ports()["l1"], timeout=5)
    assert get(connection) == (200, "a")
    yield connection
    connection.close()


def get(connection: http.client.HTTPConnection, path: str = "/") -> tuple[int, str]:
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read().decode()


def aborts_injected(envoy: Envoy) -> int:
    return envoy.stats(r"fault\.aborts_injected$").get(
        f"http.{STAT_PREFIX}.fault.aborts_injected", 0
    )


# -- tests ---------------------------------------------------------------------------------------


def test_start_serves_through_the_listener_and_the_admin_api(envoy: Envoy) -> None:
    assert envoy.pid is not None
    os.kill(envoy.pid, 0)  # alive
    # In our process group: whoever leads it (the mesh daemon) stops Envoy with one killpg.
    assert os.getpgid(envoy.pid) == os.getpgrp()
    with EnvoyAdmin(envoy.admin_socket) as admin:
        assert admin.request("GET", "/ready") == (200, b"LIVE\n")
    connection = http.client.HTTPConnection("127.0.0.1", envoy.listener_ports()["l1"], timeout=5)
    assert get(connection) == (200, "a")
    connection.close()
    assert (envoy.work_dir / "bootstrap.yaml").exists()
    assert Path(envoy.rds_config_source("r1")["path_config_source"]["path"]).exists()


def test_route_config_files_are_named_safely_and_stably(tmp_path: Path) -> None:
    envoy = Envoy(tmp_path)
    istio_like = "outbound|9080||reviews.bookinfo.svc.cluster.local~x"

    def path(name: str) -> Path:
        return Path(envoy.rds_config_source(name)["path_config_source"]["path"])

    assert path(istio_like) == path(istio_like)
    assert path(istio_like) != path(istio_like.replace("|", "_"))
    assert path(istio_like).is_relative_to(tmp_path.resolve() / "rds")
    assert "|" not in str(path(istio_like)) and "~" not in str(path(istio_like))
    assert path("..").parent.parent == tmp_path.resolve() / "rds"
    source = envoy.rds_config_source(istio_like)
    assert source["path_config_source"]["watched_directory"]["path"] == str(path(istio_like).parent)


def test_a_route_fault_reaches_an_open_connection_and_reverts(
    envoy: Envoy, upstreams: dict[str, _Upstream], client: http.client.HTTPConnection
) -> None:
    lds_reads = envoy.stats(r"listener_manager\.lds\.update_attempt$")

    applied = envoy.apply(mesh_config(envoy, upstreams, abort_status=ABORT_STATUS))

    assert (applied.route_configs, applied.listeners, applied.clusters) == (("r1",), (), ())
    assert 0 <= applied.confirmed_at - applied.swapped_at < 0.5
    # apply returns once Envoy confirmed: the connection opened before sees the fault at once.
    assert get(client) == (ABORT_STATUS, "fault filter abort")
    restored = envoy.apply(mesh_config(envoy, upstreams))
    assert restored.route_configs == ("r1",)
    assert get(client) == (200, "a")
    # A route change never touches the listeners (a changed listener drains old connections).
    assert envoy.stats(r"listener_manager\.lds\.update_attempt$") == lds_reads
    unchanged = envoy.apply(mesh_config(envoy, upstreams))
    assert not unchanged.changed


def test_route_config_wait_for_and_stats_show_what_envoy_runs(
    envoy: Envoy, upstreams: dict[str, _Upstream], client: http.client.HTTPConnection
) -> None:
    assert envoy.route_config("missing") is None
    running = envoy.route_config("r1")
    assert running is not None
    assert "typed_per_filter_config" not in running["virtual_hosts"][0]["routes"][0]

    envoy.apply(mesh_config(envoy, upstreams, abort_status=503))

    def abort_configured() -> bool:
        running = envoy.route_config("r1") or {}
        per_filter = running["virtual_hosts"][0]["routes"][0].get("typed_per_filter_config", {})
        return bool(per_filter.get(FAULT, {}).get("abort", {}).get("http_status") == 503)

    took_s = envoy.wait_for(abort_configured, timeout_s=1)
    assert 0 <= took_s < 1
    before = aborts_injected(envoy)
    for _ in range(3):
        assert get(client)[0] == 503
    assert aborts_injected(envoy) == before + 3
    assert envoy.stats(f"^http\\.{STAT_PREFIX}\\.downstream_rq_5xx$") != {}
    envoy.reset_counters()
    assert aborts_injected(envoy) == 0
    with pytest.raises(TimeoutError, match="the moon"):
        envoy.wait_for(lambda: False, timeout_s=0.05, what="the moon")


class _Prober:
    """Requests in a loop on one keep-alive connection, recording (time, status, body)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.results: list[tuple[float, int, str]] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prober")

    def __enter__(self) -> _Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            while not self._stop.is_set():
                status, body = get(connection)
                self.results.append((time.monotonic(), status, body))
        except BaseException as error:  # reported by the test, not lost in the thread
            self.errors.append(error)
        finally:
            connection.close()

    def wait_for_body(self, body: str, timeout_s: float = 2.0) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen = [at for at, _, text in list(self.results) if text == body]
            if seen:
                return seen[0]
            time.sleep(0.001)
        raise AssertionError(f"no response {body!r} within {timeout_s} s")


def test_a_new_cluster_and_a_route_to_it_never_answer_503(
    envoy: Envoy, upstreams: dict[str, _Upstream]
) -> None:
    with_b = EnvoyConfig(
        listeners=(listener(envoy),),
        clusters=(cluster("a", upstreams["a"].port), cluster("b", upstreams["b"].port)),
        route_configs={"r1": route_config("b")},
    )
    with _Prober(envoy.listener_ports()["l1"]) as prober:
        time.sleep(0.02)
        added = envoy.apply(with_b)
        prober.wait_for_body("b")
        removed = envoy.apply(mesh_config(envoy, upstreams))  # b's route goes before b does
        prober.wait_for_body("a", timeout_s=2.0)
        time.sleep(0.02)
    assert not prober.errors
    assert (added.clusters, added.route_configs, added.listeners) == (("b",), ("r1",), ())
    assert (removed.clusters, removed.route_configs) == (("b",), ("r1",))
    statuses = [status for _, status, _ in prober.results]
    assert statuses.count(503) == 0, f"{statuses.count(503)} of {len(statuses)} answered 503"
    bodies = [body for _, _, body in prober.results]
    assert "a" in bodies and "b" in bodies
    # Back on a, once: the prober saw a, then b, then a again.
    switches = [body for i, body in enumerate(bodies) if i == 0 or bodies[i - 1] != body]
    assert switches == ["a", "b", "a"]


def test_a_route_to_a_cluster_envoy_lacks_answers_503(
    envoy: Envoy, upstreams: dict[str, _Upstream], client: http.client.HTTPConnection
) -> None:
    """Why the order matters: the 503 the previous test never sees is real."""
    envoy.apply(mesh_config(envoy, upstreams, cluster_name="nowhere"))
    assert get(client)[0] == 503
    assert envoy.stats(r"no_cluster$")[f"http.{STAT_PREFIX}.no_cluster"] >= 1


def test_a_cluster_endpoint_swap_reaches_new_requests(
    envoy: Envoy, upstreams: dict[str, _Upstream], client: http.client.HTTPConnection
) -> None:
    moved = EnvoyConfig(
        listeners=(listener(envoy),),
        clusters=(cluster("a", upstreams["b"].port),),
        route_configs={"r1": route_config()},
    )
    applied = envoy.apply(moved)
    assert (applied.clusters, applied.route_configs) == (("a",), ())
    assert get(client) == (200, "b")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("abort_700", "value must be inside range [200, 600)"),
        ("unknown_route_field", "virtual_hostz"),
        ("negative_timeout", "Expected positive duration"),
    ],
)
def test_a_change_envoy_refuses_raises_and_leaves_the_old_config_serving(
    envoy: Envoy,
    upstreams: dict[str, _Upstream],
    client: http.client.HTTPConnection,
    change: str,
    reason: str,
) -> None:
    good = mesh_config(envoy, upstreams)
    if change == "abort_700":
        bad = mesh_config(envoy, upstreams, abort_status=700)
    elif change == "unknown_route_field":
        routes = route_config()
        routes["virtual_hostz"] = routes.pop("virtual_hosts")
        bad = EnvoyConfig(good.listeners, good.clusters, {"r1": routes})
    else:
        broken = cluster("b", upstreams["b"].port, connect_timeout="-1s")
        bad = EnvoyConfig(good.listeners, (*good.clusters, broken), good.route_configs)

    with pytest.raises(ConfigRejected, match="refused") as refused:
        envoy.apply(bad)

    assert reason in str(refused.value)  # Envoy's own reason, from its log
    assert all(value > 0 for value in refused.value.counters.values())
    assert get(client) == (200, "a")
    # The previous files are back: the same good change applies, and is seen as no change.
    assert not envoy.apply(good).changed
    assert envoy.apply(mesh_config(envoy, upstreams, abort_status=ABORT_STATUS)).route_configs == (
        "r1",
    )
    assert get(client)[0] == ABORT_STATUS


def _shared_memory() -> set[str]:
    return {name for name in os.listdir("/dev/shm") if name.startswith("envoy_shared_memory_")}


def test_two_envoys_side_by_side_then_stop_leaves_nothing(
    tmp_path: Path, upstreams: dict[str, _Upstream]
) -> None:
    shared_before = _shared_memory()
    first, second = Envoy(tmp_path / "one"), Envoy(tmp_path / "two")
    for envoy in (first, second):
        envoy.start(mesh_config(envoy, upstreams))
    pids = [first.pid, second.pid]
    assert None not in pids and pids[0] != pids[1]
    assert first.admin_socket != second.admin_socket
    for envoy in (first, second):
        connection = http.client.HTTPConnection(
            "127.0.0.1", envoy.listener_ports()["l1"], timeout=5
        )
        assert get(connection) == (200, "a")
        connection.close()

    for envoy in (first, second):
        envoy.stop()
        envoy.stop()  # idempotent
        assert envoy.pid is None
    for pid in pids:
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # gone and reaped, not a zombie
    assert _shared_memory() == shared_before


def test_a_listener_port_in_use_fails_the_start_clearly(
    tmp_path: Path, upstreams: dict[str, _Upstream]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        envoy = Envoy(tmp_path)
        config = mesh_config(envoy, upstreams)
        config = EnvoyConfig((listener(envoy, port=port),), config.clusters, config.route_configs)
        with pytest.raises(EnvoyStartFailed, match="refused its configuration") as failed:
            envoy.start(config)
    assert "Address already in use" in str(failed.value)
    assert f"127.0.0.1:{port}" in str(failed.value)
    assert envoy.pid is None


def _listening_tcp_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` listens on (its socket inodes in /proc/net/tcp*)."""
    inodes = set()
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(descriptor)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_the_admin_is_an_owner_only_socket_and_no_tcp_port(envoy: Envoy) -> None:
    """Envoy's admin can stop Envoy (/quitquitquit): no other local user may reach it."""
    assert stat.S_ISSOCK(envoy.admin_socket.lstat().st_mode)
    assert stat.S_IMODE(envoy.admin_socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(envoy.work_dir.stat().st_mode) == 0o700
    assert envoy.pid is not None
    assert _listening_tcp_ports(envoy.pid) == set(envoy.listener_ports().values())


def test_an_admin_socket_path_too_long_is_refused_before_envoy_starts(
    tmp_path: Path, upstreams: dict[str, _Upstream]
) -> None:
    envoy = Envoy(tmp_path / ("d" * 120))
    with pytest.raises(EnvoyStartFailed, match="longer than a Unix socket allows"):
        envoy.start(mesh_config(envoy, upstreams))
    assert envoy.pid is None


def test_envoy_exiting_at_start_fails_with_envoys_log(
    tmp_path: Path, upstreams: dict[str, _Upstream]
) -> None:
    envoy = Envoy(tmp_path, log_level="no-such-level")
    with pytest.raises(EnvoyStartFailed, match="exited with code") as failed:
        envoy.start(mesh_config(envoy, upstreams))
    assert "envoy.log" in str(failed.value)
    assert envoy.pid is None


def test_an_envoy_not_started_says_so(tmp_path: Path) -> None:
    envoy = Envoy(tmp_path)
    with pytest.raises(EnvoyError, match="not running"):
        envoy.apply(EnvoyConfig())
    with pytest.raises(EnvoyError, match="not running"):
        envoy.stats()
    envoy.stop()  # nothing to stop
    assert envoy.pid is None


def _is_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # dead, waiting for whoever adopted it to reap it


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux only")
def test_envoy_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from chaosmesh_py.localmesh.envoy import Envoy, EnvoyConfig\n"
        "envoy = Envoy(Path(sys.argv[1]))\n"
        "envoy.start(EnvoyConfig())\n"
        "print(envoy.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert not _is_gone(pid)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    deadline = time.monotonic() + 2
    while not _is_gone(pid):
        assert time.monotonic() < deadline, f"Envoy {pid} outlived the process that started it"
        time.sleep(0.01)
