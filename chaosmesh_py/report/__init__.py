"""``chaosmesh report``: one self-contained HTML file from run directories and journals.

runs.py     what the command reads: journals, game-day run directories, a game day's history
model.py    what a report shows of one run (phases, fault windows, probe values, evidence)
trend.py    a game day across its runs: pass rate, time to recover, every slot's fate
metrics.py  Istio's metrics around a run: Prometheus range queries, padded
plots.py    matplotlib figures as inline SVG
html.py     the page: inline CSS and SVG, no script, nothing fetched
"""
