"""SIGINT and SIGTERM during `chaos run`: stop the experiment, and never stop a rollback.

Chaos Toolkit turns SIGTERM into an ordinary exception, which a python activity's provider
catches: the activity fails and the run goes on injecting. And a second Ctrl-C during a
rollback abandons whatever is not removed yet. With the chaosmesh control declared, both
signals raise an exception no activity catches (``KeyboardInterrupt`` for SIGINT,
``SystemExit(128 + 15)`` for SIGTERM), so the run ends "interrupted" and the control's rollback
runs; while a rollback runs they are only noted, and it finishes. SIGKILL cannot be caught: then
``chaosmesh rollback --run ID`` replays the run's ledger.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

logger = logging.getLogger("chaostoolkit")

HANDLED = (signal.SIGINT, signal.SIGTERM)


class _State:
    lock = threading.Lock()
    deferring = 0  # how many rollbacks (of any thread) are running
    run_id = ""
    previous: dict[int, Any] = {}  # noqa: RUF012 (one process-wide table)


_state = _State()


def install(run_id: str) -> None:
    """Take over SIGINT and SIGTERM for the run; a no-op outside the main thread."""
    _state.run_id = run_id
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in HANDLED:
        previous = signal.signal(signum, _handle)
        _state.previous.setdefault(signum, previous)


def uninstall() -> None:
    """Give the signals back to whoever had them before ``install``."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, previous in list(_state.previous.items()):
        if signal.getsignal(signum) is _handle:
            signal.signal(signum, previous)
        del _state.previous[signum]


@contextmanager
def deferred() -> Iterator[None]:
    """While in this block (in any thread), SIGINT and SIGTERM are noted, not acted on."""
    with _state.lock:
        _state.deferring += 1
    try:
        yield
    finally:
        with _state.lock:
            _state.deferring -= 1


def _handle(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    if _state.deferring:
        logger.warning(
            f"chaosmesh: {name} received during the rollback; finishing the rollback first. "
            f"To abandon it, send SIGKILL, then run: chaosmesh rollback --run {_state.run_id}"
        )
        return
    logger.warning(f"chaosmesh: {name} received; stopping the experiment and rolling back")
    raise _exception_for(signum)()


def _exception_for(signum: int) -> Callable[[], BaseException]:
    if signum == signal.SIGINT:
        return KeyboardInterrupt
    return lambda: SystemExit(128 + signum)
