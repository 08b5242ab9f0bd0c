"""The policy matrix in `chaos run` on the local mesh, as users run it: its tokens and its signing
key (a Chaos Toolkit secret from the environment) appear nowhere the project writes, and the
journal holds every cell's state and outcome; the JWT-on-productpage experiment passes
`chaosmesh gate` having proven the missing-token trap and its fix."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.localmesh import running_mesh
from tests.e2e.test_resilience_experiments import gate

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
STATES = ["valid", "expired", "wrong-issuer", "wrong-audience", "bad-signature", "none"]


def experiment():
    return {
        "title": "who reaches details",
        "description": "the policy matrix with tokens signed by a key from a secret",
        "secrets": {"jwt": {"signing_key": {"type": "env", "key": "MATRIX_SIGNING_KEY"}}},
        "controls": [
            {
                "name": "chaosmesh",
                "provider": {
                    "type": "python",
                    "module": "chaosmesh_py.control",
                    "arguments": {"allow_no_fault": True},
                },
            }
        ],
        "steady-state-hypothesis": {
            "title": "details answers everyone",
            "probes": [
                {
                    "type": "probe",
                    "name": "details-open",
                    "tolerance": {"type": "range", "range": [3, 3], "target": "matched"},
                    "provider": {
                        "type": "python",
                        "module": "chaosmesh_py.security.probes",
                        "func": "policy_matrix",
                        "arguments": {
                            "sources": ["sleep", "productpage-v1", "outside"],
                            "destinations": ["details"],
                            "expect": {"default": "allowed"},
                        },
                    },
                }
            ],
        },
        "method": [
            {
                "type": "probe",
                "name": "matrix",
                "provider": {
                    "type": "python",
                    "module": "chaosmesh_py.security.probes",
                    "func": "policy_matrix",
                    "secrets": ["jwt"],
                    "arguments": {
                        "sources": ["sleep", "productpage-v1", "outside"],
                        "destinations": ["details"],
                        "requests": [{"method": "GET", "path": "/details/0"}],
                        "tokens": STATES,
                        "issuer": "https://e2e.chaosmesh.invalid",
                        "audiences": ["bookinfo"],
                        "signing_key_secret": "signing_key",
                        # No RequestAuthentication on details: every token passes.
                        "expect": {"default": "allowed"},
                    },
                },
            }
        ],
    }


def test_the_matrix_in_a_run_keeps_its_tokens_and_key_out_of_journal_log_and_output(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with running_mesh(tmp_path / "mesh") as (environment, _):
        path = tmp_path / "experiment.json"
        path.write_text(json.dumps(experiment()))
        done = subprocess.run(
            [
                *(BIN / "chaos", "--no-version-check", "--verbose"),
                *("--log-file", tmp_path / "chaos.log"),
                *("run", "--journal-path", tmp_path / "journal.json", path),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
            env={
                **environment,
                "MATRIX_SIGNING_KEY": pem,
                "CHAOSMESH_LEDGER_DIR": str(tmp_path / "ledger"),
            },
        )
    journal_text = (tmp_path / "journal.json").read_text()
    journal = json.loads(journal_text)
    assert done.returncode == 0, done.stdout + done.stderr
    (activity,) = journal["run"]
    result = activity["output"]
    assert (result["cells"], result["matched"]) == (18, 18)
    assert {row["token"] for row in result["observed"]} == set(STATES)
    written = [journal_text, (tmp_path / "chaos.log").read_text(), done.stdout, done.stderr]
    written += [p.read_text() for p in (tmp_path / "ledger").rglob("*") if p.is_file()]
    key_lines = [line for line in pem.splitlines() if "PRIVATE KEY" not in line]
    for text in written:
        # A JWT's header always starts with eyJ ('{"' in base64url).
        assert "eyJ" not in text
        assert not any(line in text for line in key_lines)


def test_the_jwt_experiment_proves_the_missing_token_trap_and_passes_the_gate(tmp_path):
    with running_mesh(tmp_path / "mesh") as (environment, status):
        assert environment["JWKS_URI"] == status["jwt_issuer"]["jwks_uri"]
        done, verdict, journal = gate(environment, tmp_path, "bookinfo-productpage-jwt.json")
        left = subprocess.run(
            [
                "kubectl",
                "--context",
                environment["KUBERNETES_CONTEXT"],
                "get",
                "-n",
                "bookinfo",
                "requestauthentications,authorizationpolicies",
                "-o",
                "name",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env=environment,
        ).stdout
    assert done.returncode == 0 and verdict["outcome"] == "pass", verdict["reasons"]
    assert journal["chaosmesh"]["rollback_complete"] is True
    assert left.strip() == ""  # both objects the run created are gone
    outputs = {entry["activity"]["name"]: entry["output"] for entry in journal["run"]}
    for name, none_outcome, reason in (
        ("a-missing-token-passes", "allowed", ""),
        ("a-missing-token-is-refused", "403", "RBAC: access denied"),
    ):
        matrix = outputs[name]
        assert matrix["cells"] == matrix["matched"] == 12, matrix["differs"]
        missing = [row for row in matrix["observed"] if row["token"] == "none"]
        assert {(row["got"], row["reason"]) for row in missing} == {(none_outcome, reason)}
    journal_text = (tmp_path / "bookinfo-productpage-jwt.journal.json").read_text()
    assert "eyJ" not in journal_text  # no token, anywhere
