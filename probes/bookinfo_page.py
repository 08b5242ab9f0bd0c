#!/usr/bin/env python3
"""Steady-state probe: does Bookinfo's product page render whole for a given user?

Logs in as ``--user`` (the page then sends ``end-user: <user>`` downstream, which is what Istio's
header-targeted faults match), fetches /productpage and looks for the errors Bookinfo shows when a
dependency fails. Prints one JSON line and exits 0 when the page is whole, 1 when it shows an
error, 2 when it cannot be reached. Chaos Toolkit runs it as a ``process`` probe with tolerance 0;
people run it by hand the same way:

    python3 probes/bookinfo_page.py http://localhost:9080 --user jason
"""

import argparse
import json
import sys
import time

import requests

# What Bookinfo's productpage prints when a call behind it fails.
PAGE_ERRORS = {
    "reviews": "Error fetching product reviews",
    "ratings": "Ratings service is currently unavailable",
    "details": "Error fetching product details",
}


def check_page(base_url: str, user: str | None, timeout_s: float) -> dict[str, object]:
    session = requests.Session()
    started = time.monotonic()
    if user:
        session.post(f"{base_url}/login", data={"username": user, "passwd": "x"}, timeout=timeout_s)
    answer = session.get(f"{base_url}/productpage", timeout=timeout_s)
    errors = [name for name, text in PAGE_ERRORS.items() if text in answer.text]
    return {
        "user": user or "(anonymous)",
        "status": answer.status_code,
        "errors": errors,
        "seconds": round(time.monotonic() - started, 3),
        "whole": answer.status_code == 200 and not errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url", help="productpage URL, e.g. http://localhost:9080")
    parser.add_argument("--user", help="log in as this user first (e.g. jason)")
    parser.add_argument("--timeout-s", type=float, default=15.0)
    options = parser.parse_args()
    try:
        result = check_page(options.base_url.rstrip("/"), options.user, options.timeout_s)
    except requests.RequestException as error:
        print(json.dumps({"whole": False, "unreachable": str(error)}))
        return 2
    print(json.dumps(result))
    return 0 if result["whole"] else 1


if __name__ == "__main__":
    sys.exit(main())
