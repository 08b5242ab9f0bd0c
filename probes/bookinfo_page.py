#!/usr/bin/env python3
"""Steady-state probe: does Bookinfo's product page render whole for a given user?

The command-line face of the Chaos Toolkit probe ``chaosmesh_py.observe.probes.bookinfo_page``
(same loads, same report; needs the package installed). Loads the page ``--pages`` times, logged
in as ``--user`` when given, and prints one JSON line. Exits 0 when at least
``--min-whole-share`` of the loads rendered whole, 1 when fewer did, 2 when the page cannot be
reached or an argument is wrong:

    python3 probes/bookinfo_page.py http://localhost:9080 --user jason --pages 20
"""

import argparse
import json
import sys

from chaosmesh_py.errors import ChaosMeshError
from chaosmesh_py.observe.bookinfo_page import check_page


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url", help="Bookinfo's base URL, e.g. http://localhost:9080")
    parser.add_argument("--user", help="log in as this user first (e.g. jason)")
    parser.add_argument("--pages", type=int, default=20, help="page loads (default 20)")
    parser.add_argument("--min-whole-share", type=float, default=1.0, help="default 1.0: all")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--timeout-s", type=float, default=15.0)
    options = parser.parse_args()
    try:
        report = check_page(
            options.base_url, options.user, options.pages, options.concurrency, options.timeout_s
        )
    except ChaosMeshError as error:
        print(json.dumps({"whole_share": 0.0, "error": str(error)}))
        return 2
    print(json.dumps(report.to_json()))
    return 0 if report.whole_share >= options.min_whole_share else 1


if __name__ == "__main__":
    sys.exit(main())
