"""What a game day's pod reads from its environment, and where that comes from.

Two kinds, kept apart: secrets (a ``${NAME}`` in a notification's URL or header, Grafana's
token, an experiment's ``secrets`` of type env) come from a Secret the user creates, by key,
and are never written into a manifest; plain variables (``render --env NAME=VALUE``, e.g. the
namespace an experiment's configuration reads) are written in clear, so a secret's name is
refused there.
"""

from __future__ import annotations

import textwrap
from collections.abc import Collection, Mapping

from chaosmesh_py import experiment as experiments
from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.gameday.suite import ENV_REFERENCE, GameDay


def secret_name(gameday: GameDay) -> str:
    return f"{gameday.name}-env"


def refuse_secrets_in_clear(gameday: GameDay) -> None:
    """The files go into a ConfigMap, readable by whoever may read ConfigMaps there: a secret
    written inline in an experiment (Chaos Toolkit's ``secrets``) or a literal Authorization
    header would be kept there in clear. Refused, naming where it is."""
    for notification in gameday.notifications:
        for header, value in notification.headers:
            if header.lower() == "authorization" and not ENV_REFERENCE.search(value):
                raise InvalidInput(
                    f"notifications ({notification.url}): headers.{header}",
                    "is written in the file: it would be kept in a ConfigMap in clear",
                    "write it as ${NAME} and put NAME in the game day's Secret",
                )
    for step in gameday.experiments:
        secrets = experiments.load(step.path).get("secrets") or {}
        for scope, values in secrets.items() if isinstance(secrets, dict) else ():
            for key, value in values.items() if isinstance(values, dict) else ():
                if not isinstance(value, dict):
                    raise InvalidInput(
                        f"{step.path.name}: secrets.{scope}.{key}",
                        "is written in the experiment: it would be kept in a ConfigMap in clear",
                        f'read it from the environment: {{"type": "env", "key": "NAME"}}; the '
                        f"pod then takes NAME from Secret {secret_name(gameday)!r}",
                    )


def from_secret(gameday: GameDay, environment: Mapping[str, str]) -> list[str]:
    """Every variable the pod takes from the Secret: the game day's secrets, and the other
    ``${NAME}`` it reads at run time (a Prometheus URL) unless given in clear with --env."""
    urls = [gameday.prometheus_url]
    urls += [check.prometheus_url for check in gameday.preflight]
    urls += [condition.prometheus_url for condition in gameday.abort]
    plain = {name for url in urls if url is not None for name in ENV_REFERENCE.findall(url)}
    return sorted(set(secret_names(gameday)) | (plain - set(environment)))


def secret_names(gameday: GameDay) -> list[str]:
    """The variables the game day reads from its environment: notification URLs and headers,
    Grafana's token, the experiments' secrets of type env. The pod takes them from a Secret
    the user creates (``secret_name``): no value is ever written into the manifests."""
    names: set[str] = set()
    for notification in gameday.notifications:
        for text in (notification.url, *(value for _, value in notification.headers)):
            names.update(ENV_REFERENCE.findall(text))
    if gameday.grafana is not None:
        names.add(gameday.grafana.token_env)
    for step in gameday.experiments:
        secrets = experiments.load(step.path).get("secrets") or {}
        for scope in secrets.values() if isinstance(secrets, dict) else ():
            for value in scope.values() if isinstance(scope, dict) else ():
                if isinstance(value, dict) and value.get("type") == "env":
                    names.add(str(value.get("key")))
    return sorted(names)


def check(gameday: GameDay, environment: Mapping[str, str], reserved: Collection[str]) -> None:
    """Refuse a plain variable that is no name, one render sets itself (``reserved``), or one
    the game day reads as a secret."""
    secret = set(secret_names(gameday))
    for name in environment:
        if not ENV_REFERENCE.fullmatch(f"${{{name}}}"):  # a name ${NAME} can name
            problem = f"{name!r} is not an environment variable's name"
            raise InvalidInput("--env", problem, "write NAME=VALUE, e.g. BOOKINFO_NAMESPACE=shop")
        if name in reserved:
            raise InvalidInput("--env", f"{name} is set by render itself", "leave it out")
        if name in secret:
            raise InvalidInput(
                "--env",
                f"{name} is a secret of the game day: the pod reads it from Secret "
                f"{secret_name(gameday)!r}, and a value here would be written in clear",
                f"leave it out and put it in Secret {secret_name(gameday)!r}",
            )


def secret_instructions(gameday: GameDay, environment: Mapping[str, str]) -> list[str]:
    """What to create before the first run, when the game day reads its environment."""
    names = from_secret(gameday, environment)
    if not names:
        return []
    reads = (
        f"The pod reads {', '.join(names)} from Secret {secret_name(gameday)!r}, which is not "
        "rendered (its values are secrets). Create it before the first run:"
    )
    return [
        *textwrap.wrap(reads, width=96, break_on_hyphens=False),
        f"  kubectl create secret generic {secret_name(gameday)} -n {gameday.namespace} \\",
        *(f"    --from-literal={name}=... \\" for name in names[:-1]),
        f"    --from-literal={names[-1]}=...",
    ]
