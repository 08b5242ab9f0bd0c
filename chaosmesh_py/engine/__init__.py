"""What every capability relies on, whatever it edits: runs and their ids, owned edits and their
removal, the durable ledger, effect verification, rollback / halt / reap, signals, guardrails,
secret redaction, and the error boundary of Chaos Toolkit activities. The engine never imports a
capability.

How a capability edits a cluster (the three forms; pure plans in ``chaosmesh_py.istio``)::

    from chaosmesh_py.engine import ownership
    from chaosmesh_py.engine.run import run_for
    from chaosmesh_py.istio import field_override, route_copy

    run = run_for(configuration)             # the run id, its ledger
    kube = Kube.connect(secrets)

    # (a) route copies in a VirtualService (chaosmesh_py.faults does this)
    ownership.apply_edit(kube, ref, run,
                         lambda vs: route_copy.plan_injection(vs, injection, allow_other_runs))
    # (b) a field override that remembers the value it replaced
    ownership.override_field(kube, ref, run, path=field_override.parse_path(
        "spec.trafficPolicy.connectionPool"), value={...}, expires_at=expiry)
    # (c) an object the run owns as a whole (name chosen by the engine, returned)
    ownership.create_object(kube, run, kind=kinds.editable_kinds()[...].kind,
                            namespace="bookinfo", spec={...}, expires_at=expiry)

Each call checks the edit (Istio's rules, other runs' holdings) before anything is sent, puts
the intent in the ledger, writes the edit and its owner record in one request, and records the
outcome. A capability never writes owned edits any other way, and never removes them itself:

- its rollback activity calls ``ownership.release(kube, ref, run.run_id, run_ledger=run.ledger)``
  (or ``faults.injection.remove_for_run``, which adds data-plane verification for copies);
- the control removes everything in ``run.touched()`` after the experiment, whatever the form;
- ``chaosmesh rollback`` (the ledger), ``halt`` and ``reap`` (the records) visit every kind in
  ``kinds.editable_kinds()``: a capability that edits a new kind, or a kind in a new form, adds
  it there (deploy/'s RBAC follows it, held there by tests/integration/test_deploy.py).

The run remembers each object's spec before its first write (``ownership``) and as its removal
left it (``faults.injection.remove``; the control reads back any other): the rollback evidence
the control puts in the journal (``evidence``), before vs after, equal or each difference named.

Removal acts on records only (``chaosmesh_py.istio.owner_record``): what a record, or the run's
ledger, names; an orphan that proves itself ours by its content; never a name alone.
"""
