"""Run the API double standalone until SIGTERM or SIGINT.

    python -m chaosmesh_py.localmesh.apiserver --crds ../shared/istio/crds-1.30.3.gen.yaml
        [--host 127.0.0.1] [--port 0] [--ready-file /tmp/apiserver.url]

Prints the URL on stdout once it listens, and writes it to --ready-file (atomically, so a
watcher never reads half a URL). Without --crds it serves VirtualService, DestinationRule and
Gateway (networking.istio.io v1, v1beta1, v1alpha3) with a permissive schema: no pruning, no
schema or CEL validation, only Istio's validating webhook (the double's own port of it).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from chaosmesh_py.localmesh.apiserver.server import ApiServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chaosmesh_py.localmesh.apiserver",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--crds", type=Path, action="append", help="CRD YAML file (repeatable)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path, help="write the URL here once listening")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with ApiServer(crd_paths=args.crds, host=args.host, port=args.port) as server:
        print(server.url, flush=True)
        if args.ready_file:
            partial = args.ready_file.with_name(args.ready_file.name + ".tmp")
            partial.write_text(server.url + "\n", encoding="utf-8")
            os.replace(partial, args.ready_file)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
