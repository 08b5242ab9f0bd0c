"""TLS verification against the API double served over HTTPS, through the real client.

Unlike chaostoolkit-kubernetes, path 3 (``KUBERNETES_HOST``) verifies by default and only an
explicit false ``KUBERNETES_VERIFY_SSL`` turns it off, with a warning; a kubeconfig is verified
as it says. A certificate that fails verification is ``Untrusted``, at once: never retried.
"""

import logging
import time

import pytest
import yaml
from chaoslib.exceptions import ActivityFailed

from chaosmesh_py.faults.probes import list_owned_faults
from chaosmesh_py.kube import credentials
from chaosmesh_py.localmesh.apiserver import ApiServer, PolicyRule
from tests.apiserver.test_tls import certificates, wait_for
from tests.conftest import BOOKINFO_MESH, ISTIO_CRDS, NAMESPACE, leftover_faults
from tests.integration.test_inject_rollback import delay_jason, exact, read, rollback, writes

TOKEN = "s3cr3t-t0ken-that-must-never-be-shown"
UNVERIFIED = "TLS verification is off"
ignore_urllib3_insecure_warning = pytest.mark.filterwarnings(
    "ignore::urllib3.exceptions.InsecureRequestWarning"  # urllib3's own, once per host
)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def https_server(certs):
    with ApiServer(crd_paths=[ISTIO_CRDS], tls=(certs.cert, certs.key)) as server:
        yield server


@pytest.fixture
def api(https_server, monkeypatch, tmp_path):
    """The HTTPS double with Bookinfo's routing, reached by path 3 with no TLS setting at all."""
    https_server.reset()
    https_server.create_namespace(NAMESPACE)
    for document in yaml.safe_load_all(BOOKINFO_MESH.read_text()):
        document["metadata"]["namespace"] = NAMESPACE
        https_server.create(document)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setenv("KUBERNETES_HOST", https_server.url)
    for name in ("KUBERNETES_VERIFY_SSL", "KUBERNETES_CA_CERT_FILE", "KUBERNETES_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("CHAOSMESH_RUN_ID", raising=False)
    monkeypatch.setattr(credentials, "_warned_unverified", set())  # each test sees its own warning
    https_server.request_log.clear()
    yield https_server
    https_server.clear_faults()
    https_server.set_tokens(None)
    left = leftover_faults(https_server)
    assert not left, f"the test left faults behind: {left}"


def unverified_warnings(caplog):
    return [
        r
        for r in caplog.records
        if r.name == "chaostoolkit"
        and r.levelno == logging.WARNING
        and UNVERIFIED in r.getMessage()
    ]


def untrusted_at_once(api, configuration):
    """The injection fails on the first handshake, without retries, and writes nothing."""
    before = read(api)
    started = time.monotonic()
    with pytest.raises(ActivityFailed) as caught:
        delay_jason(configuration)
    elapsed = time.monotonic() - started
    wait_for(lambda: api.tls_rejections)
    time.sleep(0.1)  # a retry would have handshaken again by now
    assert len(api.tls_rejections) == 1, api.tls_rejections
    assert elapsed < 1.0  # the transient budget's backoff alone would take seconds
    assert api.request_log == []  # not one request got through, let alone a write
    assert exact(read(api)) == exact(before)
    return str(caught.value)


def test_the_ca_file_makes_injection_and_rollback_work(api, certs, configuration, caplog):
    caplog.set_level(logging.WARNING)
    before = read(api)
    api.request_log.clear()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KUBERNETES_CA_CERT_FILE", str(certs.ca))
        delay_jason(configuration)
        assert len(read(api)["spec"]["http"]) == 2
        rollback(configuration)
    assert exact(read(api)) == exact(before)
    assert len(writes(api)) == 2
    assert api.tls_rejections == []
    assert unverified_warnings(caplog) == []


def test_without_the_ca_the_action_fails_untrusted_and_is_not_retried(api, configuration):
    message = untrusted_at_once(api, configuration)
    assert message.startswith(
        f"Untrusted: the API server's certificate at {api.url} is not trusted: "
        "unable to get local issuer certificate; set KUBERNETES_CA_CERT_FILE"
    ), message
    assert "KUBERNETES_VERIFY_SSL=false" in message


def test_a_certificate_for_another_name_is_untrusted(api, certs, configuration, monkeypatch):
    """The CA is right but the certificate is for 127.0.0.1, not for localhost."""
    monkeypatch.setenv("KUBERNETES_CA_CERT_FILE", str(certs.ca))
    monkeypatch.setenv("KUBERNETES_HOST", api.url.replace("127.0.0.1", "localhost"))
    message = untrusted_at_once(api, configuration)
    assert "is not trusted: Hostname mismatch" in message
    assert "'localhost'" in message


@pytest.mark.parametrize("value", ["true", "1", "yes", "", "False-ish"])
def test_any_value_but_false_keeps_verification_on(api, configuration, monkeypatch, value):
    monkeypatch.setenv("KUBERNETES_VERIFY_SSL", value)
    assert "Untrusted" in untrusted_at_once(api, configuration)


@ignore_urllib3_insecure_warning
@pytest.mark.parametrize("value", ["false", "0", "no", " OFF", "False"])
def test_an_explicit_false_turns_verification_off_and_warns_once(
    api, configuration, monkeypatch, caplog, value
):
    caplog.set_level(logging.WARNING)
    monkeypatch.setenv("KUBERNETES_VERIFY_SSL", value)
    before = read(api)
    delay_jason(configuration)
    assert len(read(api)["spec"]["http"]) == 2
    assert list_owned_faults(namespace=NAMESPACE)
    rollback(configuration)
    assert exact(read(api)) == exact(before)
    warnings = unverified_warnings(caplog)
    assert len(warnings) == 1  # three activities, one warning
    assert api.url in warnings[0].getMessage()
    assert "identity is not checked" in warnings[0].getMessage()


def test_the_false_value_may_come_from_the_secrets(api, configuration, caplog):
    caplog.set_level(logging.WARNING)
    with pytest.warns(Warning, match="Unverified HTTPS request"):  # urllib3 agrees: off
        assert list_owned_faults(secrets={"KUBERNETES_VERIFY_SSL": "false"}) == []
    assert len(unverified_warnings(caplog)) == 1


def test_plain_http_is_not_warned_about(api, api_server, monkeypatch, caplog):
    """Nothing to verify on http:// (the local mesh, the http double), so nothing to warn of."""
    caplog.set_level(logging.WARNING)
    monkeypatch.setenv("KUBERNETES_VERIFY_SSL", "false")
    monkeypatch.setenv("KUBERNETES_HOST", api_server.url)
    assert api_server.url.startswith("http://")
    list_owned_faults(namespace=NAMESPACE)
    assert unverified_warnings(caplog) == []


@ignore_urllib3_insecure_warning
def test_a_token_never_appears_in_errors_or_logs(api, certs, configuration, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("KUBERNETES_API_KEY", TOKEN)
    api.set_tokens({"another-token": ("runner", [PolicyRule(verbs=("*",), resources=("*",))])})
    failures = []

    def fails(kind):
        with pytest.raises(ActivityFailed) as caught:
            delay_jason(configuration)
        assert str(caught.value).startswith(f"{kind}: "), caught.value
        error = caught.value
        while error is not None:  # what a traceback or a journal could show, chained causes too
            failures.extend([str(error), repr(error), *map(str, getattr(error, "args", ()))])
            error = error.__cause__ or error.__context__

    fails("Untrusted")  # no CA
    monkeypatch.setenv("KUBERNETES_CA_CERT_FILE", str(certs.ca))
    fails("Unauthorized")  # verified, but the token is not one the server knows
    monkeypatch.delenv("KUBERNETES_CA_CERT_FILE")
    monkeypatch.setenv("KUBERNETES_VERIFY_SSL", "false")
    fails("Unauthorized")  # unverified, warned about
    assert len(unverified_warnings(caplog)) == 1
    assert [r.status for r in api.request_log] == [401, 401]
    assert failures
    assert all(TOKEN not in text for text in failures)
    assert TOKEN not in caplog.text
    assert all(TOKEN not in str(r.args) for r in caplog.records)


@pytest.fixture
def use_kubeconfig(api, tmp_path, monkeypatch):
    """Point KUBECONFIG at a file whose only cluster is the HTTPS double, with `cluster` extras."""

    def use(**cluster):
        path = tmp_path / "config"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "double",
                    "clusters": [{"name": "double", "cluster": {"server": api.url, **cluster}}],
                    "users": [{"name": "me", "user": {}}],
                    "contexts": [
                        {"name": "double", "context": {"cluster": "double", "user": "me"}}
                    ],
                }
            )
        )
        monkeypatch.setenv("KUBECONFIG", str(path))

    return use


def test_a_kubeconfig_is_verified_against_its_certificate_authority(
    api, certs, configuration, use_kubeconfig, caplog
):
    caplog.set_level(logging.WARNING)
    use_kubeconfig(**{"certificate-authority": str(certs.ca)})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KUBERNETES_VERIFY_SSL", "false")  # path 3 only: ignored here
        delay_jason(configuration)
        assert len(read(api)["spec"]["http"]) == 2
        rollback(configuration)
    assert unverified_warnings(caplog) == []


def test_a_kubeconfig_without_its_ca_is_untrusted(api, configuration, use_kubeconfig):
    use_kubeconfig()
    assert "Untrusted" in untrusted_at_once(api, configuration)


@ignore_urllib3_insecure_warning
def test_a_kubeconfig_may_skip_verification_and_is_warned_about(
    api, configuration, use_kubeconfig, caplog
):
    caplog.set_level(logging.WARNING)
    use_kubeconfig(**{"insecure-skip-tls-verify": True})
    delay_jason(configuration)
    assert len(read(api)["spec"]["http"]) == 2
    rollback(configuration)
    assert len(unverified_warnings(caplog)) == 1
