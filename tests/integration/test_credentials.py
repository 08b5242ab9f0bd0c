"""Credentials are found in chaostoolkit-kubernetes' order, secrets before environment."""

import pytest
import yaml
from chaoslib.exceptions import ActivityFailed
from kubernetes import client

from chaosmesh_py.faults.probes import list_owned_faults
from chaosmesh_py.faults.rollbacks import remove_faults
from chaosmesh_py.localmesh.apiserver import PolicyRule
from tests.integration.test_inject_rollback import delay_jason, read, rollback

NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing answers there


def write_kubeconfig(path, current, servers):
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": current,
                "clusters": [{"name": n, "cluster": {"server": url}} for n, url in servers.items()],
                "users": [{"name": "me", "user": {}}],
                "contexts": [{"name": n, "context": {"cluster": n, "user": "me"}} for n in servers],
            }
        )
    )
    return path


@pytest.fixture
def kubeconfig(api, tmp_path, monkeypatch):
    path = write_kubeconfig(
        tmp_path / "config", "elsewhere", {"elsewhere": NOWHERE, "double": api.url}
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setenv("KUBERNETES_HOST", NOWHERE)  # a kubeconfig takes precedence over it
    return path


def test_a_kubeconfig_context_from_the_environment(api, kubeconfig, configuration, monkeypatch):
    monkeypatch.setenv("KUBERNETES_CONTEXT", "double")
    delay_jason(configuration)
    assert len(read(api)["spec"]["http"]) == 2
    rollback(configuration)


def test_secrets_come_before_the_environment(api, kubeconfig, monkeypatch):
    monkeypatch.setenv("KUBERNETES_CONTEXT", "elsewhere")
    assert list_owned_faults(secrets={"KUBERNETES_CONTEXT": "double"}) == []


def test_the_process_wide_client_default_is_left_alone(api, kubeconfig, monkeypatch):
    default_host = client.Configuration.get_default_copy().host
    monkeypatch.setenv("KUBERNETES_CONTEXT", "double")
    list_owned_faults()
    assert client.Configuration.get_default_copy().host == default_host


def test_an_api_key_from_secrets(api, configuration):
    api.set_tokens({"good-token": ("chaos-runner", [PolicyRule(verbs=("*",), resources=("*",))])})
    try:
        secrets = {"KUBERNETES_API_KEY": "good-token"}
        delay_jason(configuration, secrets=secrets)
        assert len(read(api)["spec"]["http"]) == 2
        remove_faults(configuration=configuration)  # the run remembers how it connected

        with pytest.raises(ActivityFailed) as caught:
            delay_jason(configuration, secrets={"KUBERNETES_API_KEY": "stolen"})
    finally:
        api.set_tokens(None)
    assert "Unauthorized" in str(caught.value)
    assert "stolen" not in str(caught.value)
    assert len(read(api)["spec"]["http"]) == 1
