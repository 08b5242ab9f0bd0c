"""The local mesh's background process: ``python -m chaosmesh_py.localmesh.daemon --state-dir DIR``.

Started by ``chaosmesh local up`` in its own session. It runs the mesh, writes ``status.json``
in the state directory once every part answers (atomically: readers see all or nothing), and on
SIGTERM or SIGINT stops every part and removes what it wrote. Envoy and Prometheus, its child
processes, are tied to it and die with it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from chaosmesh_py.localmesh.mesh import NO_PROMETHEUS, LocalMesh
from chaosmesh_py.localmesh.topology import free_ports
from chaosmesh_py.localmesh.workloads import START_DELAY_S

STATUS_FILE = "status.json"


def write_status(state_dir: Path, status: dict[str, object]) -> None:
    temporary = state_dir / f".{STATUS_FILE}.tmp"
    temporary.write_text(json.dumps(status, indent=2))
    os.replace(temporary, state_dir / STATUS_FILE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--crds", type=Path, action="append", default=[])
    parser.add_argument("--apply", type=Path, action="append", default=[])
    parser.add_argument("--api-port", type=int, default=0)
    parser.add_argument("--ingress-port", type=int)
    parser.add_argument("--prometheus", help="the prometheus binary to run beside the mesh")
    parser.add_argument("--no-prometheus-reason", default=NO_PROMETHEUS, help="why none runs")
    parser.add_argument("--pod-start-delay", type=float, default=START_DELAY_S)
    options = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    mesh = LocalMesh(
        options.state_dir / "work",
        options.crds,
        options.apply,
        free_ports(),
        api_port=options.api_port,
        ingress_port=options.ingress_port,
        prometheus=options.prometheus,
        no_prometheus_reason=options.no_prometheus_reason,
        pod_start_delay_s=options.pod_start_delay,
    )
    try:
        mesh.start()
        credentials = {
            "ca_file": str(mesh.credentials.ca_file),
            "token_file": str(mesh.credentials.token_file),
        }
        write_status(options.state_dir, {"pid": os.getpid(), **mesh.info(), **credentials})
        print(f"local mesh up: API {mesh.api.url}", flush=True)
        stop.wait()
    finally:
        mesh.stop()
        (options.state_dir / STATUS_FILE).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
