"""Chaos Toolkit probes for traffic: what users get, measured, not what the configuration says.

Three families, each a thin surface over its own module:
- the observed share of requests per version (``chaosmesh_py.traffic.share``);
- the dark-launch leak check (``chaosmesh_py.traffic.leaks``);
- canary analysis, canary against baseline (``chaosmesh_py.traffic.canary``).
"""

# ---------------------------------------------------------------- observed share (share.py)


# ---------------------------------------------------------------- dark-launch leaks (leaks.py)


# ---------------------------------------------------------------- canary analysis (canary.py)
