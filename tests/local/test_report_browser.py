"""`chaosmesh report` end to end, as a user meets it: a real `chaos run` of a packaged Bookinfo
experiment on the local mesh (real Envoy, a real Prometheus scraping it, named in the
experiment's configuration), its journal in a game day's results beside other runs, the report
written by the `chaosmesh` command, then opened from file:// in a real headless Chromium: it
renders, its plots are there and sized, nothing is logged to the console, and it asks for
nothing beyond its own file. The screenshot is kept (its path is printed and recorded as the
test's `screenshot` property)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaosmesh_py import packaged
from chaosmesh_py.localmesh.prometheus import SCRAPE_INTERVAL_S
from tests import browser
from tests.local.conftest import through_sidecar
from tests.local.load import Traffic
from tests.local.test_hits import chaos_run
from tests.local.test_prometheus import prometheus_url  # noqa: F401 (a fixture)
from tests.report_data import gameday_run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not browser.available(), reason="needs Debian's chromium"),
]

CHAOSMESH = str(Path(sys.executable).parent / "chaosmesh")
# Each figure's SVG as laid out, and what the page says, for the assertions below.
MEASURE = """JSON.stringify({
  svgs: [...document.querySelectorAll('figure svg')].map(svg => {
    const box = svg.getBoundingClientRect();
    return {width: box.width, height: box.height, texts: svg.querySelectorAll('text').length};
  }),
  badges: [...document.querySelectorAll('.badge')].map(b => b.textContent),
  evidence: [...document.querySelectorAll('.equal, .differs')].map(e => e.textContent),
  title: document.title,
  width: document.documentElement.scrollWidth,
})"""


def test_a_real_runs_report_renders_in_a_real_browser_offline(
    mesh,
    tmp_path,
    record_property,
    prometheus_url,  # noqa: F811
):
    experiment = json.loads((packaged.examples_dir() / "bookinfo-ratings-abort.json").read_text())
    # The run records its Prometheus; the report plots Istio's metrics from it.
    experiment["configuration"]["chaosmesh_prometheus_url"] = prometheus_url
    path = tmp_path / "bookinfo-ratings-abort.json"
    path.write_text(json.dumps(experiment))
    # Steady traffic to ratings (as a cluster has), so Prometheus holds its series before,
    # during and after the run: a counter born during the run shows no increase.
    with Traffic(*through_sidecar(mesh, "ratings", "/ratings/0"), rate_per_s=20):
        time.sleep(3 * SCRAPE_INTERVAL_S)
        done = chaos_run(mesh, tmp_path, path)
        # The run's last requests scraped, and Envoy's histograms flushed (every 5 s).
        time.sleep(6)
    journal_path = tmp_path / "journal.json"
    assert journal_path.exists(), done.stderr[-2000:]
    journal = json.loads(journal_path.read_text())
    # The control recorded what the report needs: evidence, rollback times, hits.
    (evidence,) = journal["chaosmesh"]["evidence"]
    assert evidence["resource"].endswith("/ratings") and evidence["equal"] is True
    assert journal["chaosmesh"]["faults"][0]["hits"] > 0
    assert journal["chaosmesh"]["prometheus_url"] == prometheus_url

    results = tmp_path / "results"
    missed = {"slot": "2026-12-15T10:30:00+01:00", "outcome": "missed", "runner": "r"}
    gameday_run(results, "bookinfo", "20261208T093000Z", "fail", [journal], slot=None)
    gameday_run(results, "bookinfo", "20261222T093000Z", "fail", [journal], slots=[missed])
    report = tmp_path / "report.html"
    made = subprocess.run(
        [CHAOSMESH, "report", results / "bookinfo", journal_path, "-o", report],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    text = report.read_text()
    assert f"Istio's metrics from {prometheus_url}" in text
    assert "Prometheus:" not in text, "some query found nothing"

    screenshot = tmp_path / "report.png"
    page = browser.load(report.as_uri(), MEASURE, screenshot)
    print(f"report screenshot: {screenshot}")
    record_property("screenshot", str(screenshot))

    assert page.requests == [report.as_uri()], "the report asked for more than its own file"
    assert page.errors == []
    shown = json.loads(page.evaluated)
    # The trend, then per experiment (the latest run's, and the journal given alone): a
    # timeline, probe values and Istio's metrics.
    assert len(shown["svgs"]) == 1 + 2 * 3
    for svg in shown["svgs"]:
        assert svg["width"] > 400 and svg["height"] > 100, svg
        assert svg["texts"] > 5, svg  # axis labels and ticks, as text
    assert shown["width"] <= 1200  # nothing wider than the window
    assert shown["badges"].count("fail") >= 2  # the abort reveals the page's degradation
    assert shown["evidence"] == ["equal", "equal"]
    assert shown["title"] == "Game day bookinfo"
    assert screenshot.stat().st_size > 20_000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
