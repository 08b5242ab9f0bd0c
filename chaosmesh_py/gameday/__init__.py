"""Scheduled game days: a suite of experiments run in order, on a schedule, with safety around it.

    suite.py     the game-day file's model (frozen dataclasses); ``suite.load(path)`` reads one
    loader.py    reading the file: its structure, then what a schema cannot say
    schema.py    gameday.schema.json (the file's one description) and its errors as users read them
    upcoming.py  what ``chaosmesh gameday validate`` shows: the file, then its next runs
    schedule.py  cron + IANA timezone + jitter + blackouts: the slots a schedule fires
    runner.py    ``chaosmesh gameday run``: one game day now, honest like ``gate``
    lease.py     the Lease that lets one runner at a time run a game day
    state.py     the pause switch and the slot history, in a ConfigMap
    slots.py     which slot a run belongs to; missed and interrupted slots
    conditions.py  preflight checks and abort conditions (PromQL)
    render.py    the manifests that run it in a cluster (CronJob, ServiceAccount, RBAC, ConfigMap)

A game day's run writes a directory (``chaosmesh report`` reads it)::

    RESULTS/<game day>/<slot id>/gameday.json        the summary (``runner.SUMMARY_VERSION``)
    RESULTS/<game day>/<slot id>/junit.xml           one test case per experiment (``gate``'s)
    RESULTS/<game day>/<slot id>/NN-<stem>.journal.json and .log
"""
