"""The control, called as Chaos Toolkit calls it, against the API double."""

from chaosmesh_py import control
from chaosmesh_py.engine import ledger
from chaosmesh_py.engine.run import run_for
from chaosmesh_py.localmesh.apiserver import ApiFault
from tests.integration.test_inject_rollback import delay_jason, exact, read


def test_a_failed_rollback_is_recorded_and_cleanup_finishes_it(api):
    configuration = {}
    control.configure_control(configuration=configuration)
    run_id = configuration["chaosmesh_run_id"]
    before = read(api)
    delay_jason(configuration)

    api.inject(ApiFault(method="PATCH", path="/virtualservices/ratings$", status=403, times=100))
    journal = {"status": "completed"}
    control.after_experiment_control(context={}, state=journal, configuration=configuration)
    summary = journal["chaosmesh"]
    assert summary["run_id"] == run_id
    assert summary["rollback_complete"] is False
    assert summary["rollback_failed"][0]["virtual_service"] == "bookinfo/ratings"
    assert "forbidden: needs patch" in summary["rollback_failed"][0]["error"]
    assert len(read(api)["spec"]["http"]) == 2

    api.clear_faults()
    control.cleanup_control()
    assert exact(read(api)) == exact(before)


def test_a_configured_run_id_is_kept(api):
    configuration = {"chaosmesh_run_id": "gameday42"}
    control.configure_control(configuration=configuration)
    report = delay_jason(configuration)
    assert report["routes"][0].startswith("chaosmesh-gameday42-")
    journal = {}
    control.after_experiment_control(context={}, state=journal, configuration=configuration)
    assert journal["chaosmesh"]["rollback"][0]["removed"] == report["routes"]
    control.cleanup_control()


def test_a_complete_rollback_closes_the_ledger_naming_the_api_it_wrote_to(api):
    configuration = {"chaosmesh_run_id": "closing"}
    control.configure_control(configuration=configuration)
    delay_jason(configuration)
    control.after_experiment_control(context={}, state={}, configuration=configuration)
    entries = run_for(configuration).ledger.entries()
    assert ledger.is_closed(entries)
    assert entries[-1].api == api.url
    control.cleanup_control()


def test_argument_problems_name_each_activity():
    experiment = {
        "method": [
            {
                "type": "action",
                "name": "ok",
                "provider": {
                    "type": "python",
                    "module": "chaosmesh_py.faults.actions",
                    "func": "inject_abort",
                    "arguments": {"virtual_service": "r", "percentage": 5, "http_status": 503},
                },
            },
            {
                "type": "action",
                "name": "bad-status",
                "provider": {
                    "type": "python",
                    "module": "chaosmesh_py.faults.actions",
                    "func": "inject_abort",
                    "arguments": {"virtual_service": "r", "percentage": 5, "http_status": 99},
                },
            },
            {
                "type": "action",
                "name": "unknown-arg",
                "provider": {
                    "type": "python",
                    "module": "chaosmesh_py.faults.actions",
                    "func": "inject_delay",
                    "arguments": {
                        "virtual_service": "r",
                        "percentage": 5,
                        "fixed_delay": "1s",
                        "delay": "2s",
                    },
                },
            },
            {
                "type": "action",
                "name": "templated",
                "provider": {
                    "type": "python",
                    "module": "chaosmesh_py.faults.actions",
                    "func": "inject_delay",
                    "arguments": {
                        "virtual_service": "r",
                        "percentage": "${pct}",
                        "fixed_delay": "1s",
                    },
                },
            },
        ]
    }
    problems = control.argument_problems(experiment, {"pct": 150})
    assert len(problems) == 3
    assert problems[0].startswith("bad-status: http_status: 99")
    assert problems[1].startswith("unknown-arg:") and "delay" in problems[1]
    assert problems[2].startswith("templated: percentage: 150")
