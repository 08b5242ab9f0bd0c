"""The project's error tree.

Every failure the project knows how to explain is one of these, raised with a message that names
the field or the resource and says what to do. Chaos Toolkit activities convert them to
``ActivityFailed`` at the boundary (see ``chaosmesh_py.engine.activity``); nothing returns a
status dict in place of raising.

    ChaosMeshError
    ├── InvalidInput            bad arguments or experiment: names the field and the fix
    │   ├── ProtectedNamespace  kube-system / istio-system without explicit permission
    │   └── TargetNotFound      no such VirtualService / route / host; lists what exists
    ├── OwnedByAnotherRun       another run's faults sit on the resource
    ├── LedgerUnwritable        the run's ledger cannot be written: nothing is injected
    └── ApiError                the Kubernetes API refused or could not be reached
        ├── Forbidden           403: names the verb, resource and namespace needed
        ├── Unauthorized        401
        ├── NotFound            404
        ├── Rejected            400 / 422: the API server or an admission webhook refused the object
        ├── ConflictPersisted   409 after every re-read: other writers kept winning
        ├── Unavailable         429, 5xx, timeouts, dropped connections, after bounded retries
        └── Untrusted           TLS: the API server's certificate failed verification; never
                                retried (another attempt meets the same certificate)
"""

from __future__ import annotations

import reprlib

# Remote bodies can be large (a whole object echoed back); keep messages readable.
_MAX_REMOTE_MESSAGE = 500


class ChaosMeshError(Exception):
    """Root of every error this project raises on purpose."""


class InvalidInput(ChaosMeshError):
    """An argument or experiment field is wrong. Raised before anything is written."""

    def __init__(self, field: str, problem: str, fix: str = "") -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        message = f"{field}: {problem}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)


class ProtectedNamespace(InvalidInput):
    """The target namespace is protected and the experiment did not allow it explicitly."""


class TargetNotFound(InvalidInput):
    """The VirtualService, route or host named as target does not exist."""


class OwnedByAnotherRun(ChaosMeshError):
    """Another run has faults on the resource; sharing it must be asked for explicitly."""


class LedgerUnwritable(ChaosMeshError):
    """The ledger (``chaosmesh_py.engine.ledger``) cannot be written. An injection stops before its
    write: a fault the ledger does not know of could outlive the runner."""


class ApiError(ChaosMeshError):
    """The Kubernetes API answered with an error, or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class Unauthorized(ApiError):
    """401: the credentials were not accepted."""


class Forbidden(ApiError):
    """403: RBAC denies the request."""


class NotFound(ApiError):
    """404: the resource (or its namespace, or its kind) does not exist."""


class Rejected(ApiError):
    """400/422: schema, CEL rule or admission webhook refused the object."""


class ConflictPersisted(ApiError):
    """409 on every attempt: the resource kept changing under us."""


class Unavailable(ApiError):
    """429, 5xx, timeout or dropped connection that outlasted the retry budget."""

    def __init__(
        self, message: str, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, status)


class Untrusted(ApiError):
    """The API server's TLS certificate failed verification (unknown CA, wrong name, expired).

    Not a subclass of ``Unavailable``: nothing about it changes between attempts, and retrying
    with backoff would only delay the message that says which CA to configure.
    """


def shorten(text: str) -> str:
    """Cut a remote message to a readable length."""
    text = text.strip()
    if len(text) <= _MAX_REMOTE_MESSAGE:
        return text
    return text[:_MAX_REMOTE_MESSAGE] + "… (truncated)"


# Values echoed in error messages are cut short: a 10 MB string must not fill the screen.
_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60
_SHORT.maxlong = 40
_SHORT.maxlevel = 3
_SHORT.maxdict = _SHORT.maxlist = _SHORT.maxtuple = 6


def shown(value: object) -> str:
    """``repr(value)`` cut to a readable length, for error messages."""
    return _SHORT.repr(value)
