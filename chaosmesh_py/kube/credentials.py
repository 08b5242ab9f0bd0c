"""Credentials: which API server to talk to, as whom, resolved as chaostoolkit-kubernetes does.

An experiment that already works with chaosk8s needs nothing new. Each value is looked up in
the experiment's secrets first, then in the environment:

    =====  ======================================  ============================================
    order  when                                    how
    =====  ======================================  ============================================
    1      a kubeconfig exists (``KUBECONFIG``,    that file, context ``KUBERNETES_CONTEXT``
           else ``~/.kube/config``)                (else its current context)
    2      ``CHAOSTOOLKIT_IN_POD=true``            the pod's service account
    3      otherwise                               ``KUBERNETES_HOST`` (default
                                                   http://localhost), with ``KUBERNETES_API_KEY``
                                                   (+ ``_PREFIX``, default Bearer), or
                                                   ``KUBERNETES_CERT_FILE``/``_KEY_FILE``, or
                                                   ``KUBERNETES_USERNAME``/``_PASSWORD``;
                                                   ``KUBERNETES_CA_CERT_FILE``;
                                                   ``KUBERNETES_VERIFY_SSL`` (verify unless
                                                   false/0/no/off)
    =====  ======================================  ============================================

Deviations from chaosk8s. The client is never installed as the process-wide default, so two
experiments (or a test and the code under test) cannot change each other's cluster. On path 3,
TLS is verified unless ``KUBERNETES_VERIFY_SSL`` says false (chaosk8s verifies only when it is
set, to anything); turning it off is logged as a warning once per API server. Paths 1 and 2
verify as the client library does: always, unless the kubeconfig's cluster says
``insecure-skip-tls-verify: true``. A context asked for by name (``--context``,
``KUBERNETES_CONTEXT``) when no kubeconfig exists is an error, not silently ignored.

Every problem with what the user gave (a context the kubeconfig lacks, a kubeconfig with no
current context, a file that is not YAML, not a mapping, or unreadable, a certificate file that
does not exist, an in-pod setting outside a pod) raises ``InvalidInput`` naming the fix, here,
so the ``chaosmesh`` commands exit 2 and activities fail with the same message: the client's
own ``ConfigException`` never reaches the user.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import yaml

from chaosmesh_py.errors import InvalidInput, shorten

logger = logging.getLogger("chaostoolkit")

# API servers already warned about in this process: one warning each, not one per activity.
_warned_unverified: set[str] = set()
_FALSE = frozenset({"false", "0", "no", "off"})
# More contexts than this are summarized: the message must stay readable.
_CONTEXTS_SHOWN = 20
_KUBECONFIG_FIX = "fix the file, or point KUBECONFIG at a valid kubeconfig"
_CHOOSE_CONTEXT = "pass one with --context NAME or KUBERNETES_CONTEXT=NAME"
_KUBECONFIG_KEYS = {"clusters", "contexts", "users", "current-context"}


def api_client(secrets: Mapping[str, Any]) -> Any:
    """An ApiClient for the credentials ``secrets`` and the environment give (see the table)."""
    from kubernetes import client

    def lookup(key: str, default: Any = None) -> Any:
        value = secrets.get(key, os.environ.get(key, default))
        return None if value is None else str(value)

    configuration = client.Configuration()
    kubeconfig = os.environ.get("KUBECONFIG", "~/.kube/config")
    paths = [os.path.expanduser(p) for p in kubeconfig.split(os.pathsep) if p]
    context = lookup("KUBERNETES_CONTEXT") or None
    if any(os.path.exists(path) for path in paths):
        _load_kubeconfig([p for p in paths if os.path.exists(p)], context, configuration)
    elif context is not None:
        raise InvalidInput(
            "context",
            f"{context!r} was asked for, but there is no kubeconfig at {', '.join(paths)}",
            "set KUBECONFIG to the file that has it, or leave the context unset to use "
            "KUBERNETES_HOST; chaosmesh local up adds chaosmesh-local to ~/.kube/config",
        )
    elif os.environ.get("CHAOSTOOLKIT_IN_POD") == "true":
        _load_in_pod(configuration)
    else:
        configuration.host = lookup("KUBERNETES_HOST", "http://localhost")
        # Not chaosk8s' "set to anything: verify": verifying by default is the safe reading,
        # and "false" meaning true surprised everyone who wrote it.
        verify = lookup("KUBERNETES_VERIFY_SSL")
        configuration.verify_ssl = verify is None or verify.strip().lower() not in _FALSE
        configuration.ssl_ca_cert = _readable_file("KUBERNETES_CA_CERT_FILE", lookup)
        if lookup("KUBERNETES_API_KEY") is not None:
            # "BearerToken", not chaosk8s' "authorization": client 36 reads the prefix only
            # under this name, and sends the token without "Bearer " otherwise (401).
            configuration.api_key["BearerToken"] = lookup("KUBERNETES_API_KEY")
            configuration.api_key_prefix["BearerToken"] = lookup(
                "KUBERNETES_API_KEY_PREFIX", "Bearer"
            )
        elif lookup("KUBERNETES_CERT_FILE") is not None:
            configuration.cert_file = _readable_file("KUBERNETES_CERT_FILE", lookup)
            configuration.key_file = _readable_file("KUBERNETES_KEY_FILE", lookup)
        elif lookup("KUBERNETES_USERNAME") is not None:
            configuration.username = lookup("KUBERNETES_USERNAME")
            configuration.password = lookup("KUBERNETES_PASSWORD", "")
    _warn_if_unverified(str(configuration.host), bool(configuration.verify_ssl))
    if os.environ.get("HTTP_PROXY"):
        configuration.proxy = os.environ["HTTP_PROXY"]
    if os.environ.get("NO_PROXY"):
        configuration.no_proxy = os.environ["NO_PROXY"]
    # Retries are decided in Kube.update, after re-reading: urllib3 re-sending a PUT or DELETE
    # that had landed turns success into a misleading 409 or 404.
    configuration.retries = False
    return client.ApiClient(configuration)


def read_kubeconfig(path: str) -> dict[str, Any]:
    """One kubeconfig file as a mapping ({} when empty); InvalidInput naming the file and the
    problem when it cannot be read, is not YAML, or is not a mapping."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise InvalidInput("kubeconfig", f"cannot read {path}: {reason}", _KUBECONFIG_FIX) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise InvalidInput(
            "kubeconfig", f"{path} is not YAML{where}: {problem}", _KUBECONFIG_FIX
        ) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise InvalidInput(
            "kubeconfig",
            f"{path} is not a kubeconfig: its top level is a {type(document).__name__}, not a "
            "mapping of clusters, contexts and users",
            _KUBECONFIG_FIX,
        )
    return document


def _load_kubeconfig(paths: list[str], context: str | None, configuration: Any) -> None:
    """Check the context against the files (merged as the client merges them), then load."""
    from kubernetes import config

    names: list[str] = []
    current = ""
    for path in paths:
        document = read_kubeconfig(path)
        if document and not _KUBECONFIG_KEYS & document.keys():
            raise InvalidInput(
                "kubeconfig",
                f"{path} is not a kubeconfig: it has no clusters, contexts or users",
                _KUBECONFIG_FIX,
            )
        entries = document.get("contexts") or []
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise InvalidInput(
                "kubeconfig",
                f"{path}: contexts must be a list of mappings with a name and a context",
                _KUBECONFIG_FIX,
            )
        names += [str(e.get("name")) for e in entries if str(e.get("name")) not in names]
        if "current-context" in document:  # the client lets a later file's setting win
            current = str(document.get("current-context") or "")
    where = f"the kubeconfig {os.pathsep.join(paths)}"
    chosen = context or current
    if not chosen:
        raise InvalidInput(
            "context",
            f"{where} sets no current context",
            f"{_CHOOSE_CONTEXT}, e.g. chaosmesh-local for the local mesh; {_listed(names)}",
        )
    if chosen not in names:
        asked = "" if context else "current context "
        raise InvalidInput(
            "context",
            f"no {asked}{chosen!r} in {where}",
            f"{_listed(names)}; {_CHOOSE_CONTEXT}",
        )
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.pathsep.join(paths),
            context=context,
            client_configuration=configuration,
        )
    except Exception as error:
        # ConfigException, or the client tripping over an entry of the wrong type.
        raise InvalidInput(
            "kubeconfig",
            f"context {chosen!r} in {where} cannot be used: {shorten(str(error)) or error!r}",
            "fix its cluster and user entries (server, certificate files, token)",
        ) from None


def _listed(names: list[str]) -> str:
    if not names:
        return "it has no contexts"
    shown = ", ".join(names[:_CONTEXTS_SHOWN])
    more = len(names) - _CONTEXTS_SHOWN
    return f"its contexts: {shown}" + (f" and {more} more" if more > 0 else "")


def _load_in_pod(configuration: Any) -> None:
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    try:
        config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    except ConfigException as error:
        raise InvalidInput(
            "CHAOSTOOLKIT_IN_POD",
            f"is true, but this is not a pod with a service account: {str(error).rstrip('.')}",
            "unset CHAOSTOOLKIT_IN_POD outside a pod, or mount the service account token",
        ) from None


def _readable_file(key: str, lookup: Any) -> str | None:
    path: str | None = lookup(key)
    if path is not None and not os.path.isfile(path):
        problem = "is a directory" if os.path.isdir(path) else "does not exist"
        raise InvalidInput(key, f"{path!r} {problem}", "give the path of a PEM file")
    return path


def _warn_if_unverified(host: str, verify: bool) -> None:
    """Say once per API server that its identity is not checked (plain http has none to check)."""
    if verify or not host.lower().startswith("https:") or host in _warned_unverified:
        return
    _warned_unverified.add(host)
    logger.warning(
        "TLS verification is off for the API server at %s (KUBERNETES_VERIFY_SSL or the "
        "kubeconfig's insecure-skip-tls-verify): its identity is not checked, so whoever "
        "answers there gets the credentials and can pose as the cluster",
        host,
    )
