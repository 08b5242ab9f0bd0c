"""The error boundary every Chaos Toolkit activity of this extension runs inside.

Activities raise ``chaoslib.exceptions.ActivityFailed`` with the project's own message, so the
journal and the console show "percentage: 101 is outside [0.0001, 100] (…)" rather than a
traceback. Errors that are not the project's (bugs) keep their traceback.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from chaosmesh_py.errors import ChaosMeshError


@contextmanager
def boundary() -> Iterator[None]:
    from chaoslib.exceptions import ActivityFailed

    try:
        yield
    except ChaosMeshError as error:
        raise ActivityFailed(f"{type(error).__name__}: {error}") from error


def check_action_arguments(
    action: Callable[..., object],
    check: Callable[[Mapping[str, Any]], object] | None,
    arguments: Mapping[str, Any],
    configuration: Mapping[str, Any] | None,
) -> None:
    """Bind ``arguments`` to ``action`` as Chaos Toolkit would (defaults applied) and run the
    action's ``check`` on them with the configuration: InvalidInput before any request. A
    TypeError names an argument the action does not take."""
    bound = inspect.signature(action).bind(**arguments)
    bound.apply_defaults()
    if check is not None:
        check({**bound.arguments, "configuration": configuration})
