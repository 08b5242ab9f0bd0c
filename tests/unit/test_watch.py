"""The guardrail's watch with a hold duration: a check breaches only once it has been out of
bounds for ``hold_s`` without a break (what a game day's abort condition's ``for`` means)."""

import threading
import time

from chaosmesh_py.engine.guardrail import Check, Observation, Watch


class Value:
    """A value the test moves; the check is out of bounds above 1."""

    def __init__(self) -> None:
        self.now = 0.0
        self.fails = False

    def observe(self) -> Observation:
        if self.fails:
            raise ConnectionError("Prometheus is down")
        return Observation(self.now > 1, self.now, f"{self.now:g} > 1")


def watching(value: Value, hold_s: float):
    breaches = []
    breached = threading.Event()

    def on_breach(breach):
        breaches.append(breach)
        breached.set()

    watch = Watch([Check("error-ratio", value.observe, hold_s)], 0.02, on_breach).start()
    return watch, breaches, breached


def test_out_of_bounds_shorter_than_the_hold_does_not_breach() -> None:
    value = Value()
    watch, breaches, _ = watching(value, hold_s=3.0)  # generous: a busy machine stretches sleeps
    try:
        for _ in range(3):  # three blips, each well under the hold
            value.now = 5
            time.sleep(0.2)
            value.now = 0
            time.sleep(0.1)
        assert breaches == []
        assert watch.checks > 10
    finally:
        watch.stop()


def test_out_of_bounds_for_the_hold_breaches_once_with_the_value() -> None:
    value = Value()
    watch, breaches, breached = watching(value, hold_s=0.5)
    try:
        time.sleep(0.1)
        value.now = 5
        out_at = time.monotonic()
        assert breached.wait(10)
        held = time.monotonic() - out_at
        assert held >= 0.5
        (breach,) = breaches
        assert breach.probe == "error-ratio"
        assert breach.value == 5
        assert breach.reason.startswith("5 > 1 for ")
    finally:
        watch.stop()


def test_a_check_that_cannot_see_is_out_of_bounds_and_held_like_any_other() -> None:
    value = Value()
    watch, breaches, breached = watching(value, hold_s=0.3)
    try:
        value.fails = True
        assert breached.wait(10)
        (breach,) = breaches
        assert breach.reason.startswith("the check failed: Prometheus is down for ")
        assert breach.value is None
    finally:
        watch.stop()


def test_without_a_hold_the_first_look_out_of_bounds_breaches() -> None:
    value = Value()
    value.now = 2
    watch, breaches, breached = watching(value, hold_s=0.0)
    try:
        assert breached.wait(10)
        assert watch.checks == 1
        assert breaches[0].reason == "2 > 1"  # no "for": nothing was held
    finally:
        watch.stop()
