"""The kubeconfig ``local up`` edits is the user's: it holds other clusters' credentials, their
comments and their layout. Only our three entries change, the file is never readable by others,
a symlink stays a symlink, and ``down`` gives the file back byte for byte."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading

import pytest
import yaml

from chaosmesh_py.errors import InvalidInput
from chaosmesh_py.localmesh import kubeconfig

SERVER = "https://127.0.0.1:6443"
CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

KUBECTL_STYLE = """\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: QUJD
    server: https://prod.example:6443   # production: careful
  name: prod
contexts:
- context:
    cluster: prod
    user: admin
  name: prod
current-context: prod
kind: Config
preferences: {}
users:
- name: admin
  user:
    token: prod-secret   # rotated monthly
"""

HAND_WRITTEN = """\
# Jane's clusters
apiVersion: v1
kind: Config

clusters:
  - name: staging
    cluster:
      server: https://staging.example   # via VPN
# users below
users:
  - name: jane
    user: {token: staging-secret}
contexts:
  - name: staging
    context: {cluster: staging, user: jane}
current-context: staging
"""


def ours(path, section):
    loaded = yaml.safe_load(path.read_text())
    return [e for e in loaded.get(section) or [] if e["name"] == kubeconfig.CONTEXT]


@pytest.mark.parametrize("original", [KUBECTL_STYLE, HAND_WRITTEN], ids=["kubectl", "by-hand"])
def test_only_our_entries_change_and_down_gives_the_file_back(tmp_path, original):
    path = tmp_path / "config"
    path.write_text(original)
    kubeconfig.add_context(path, SERVER, CA, "our-token")
    edited = path.read_text()
    for line in original.splitlines():  # every byte of theirs, comments included, in order
        assert line in edited
    cluster, user, context = (ours(path, s)[0] for s in ("clusters", "users", "contexts"))
    assert cluster["cluster"]["server"] == SERVER
    assert cluster["cluster"]["certificate-authority-data"]
    assert user["user"] == {"token": "our-token"}
    assert context["context"] == {"cluster": "chaosmesh-local", "user": "chaosmesh-local"}
    assert yaml.safe_load(edited)["current-context"] == yaml.safe_load(original)["current-context"]

    kubeconfig.add_context(path, "https://127.0.0.1:7443", CA, "new-token")  # up again: replaced
    assert [c["cluster"]["server"] for c in ours(path, "clusters")] == ["https://127.0.0.1:7443"]
    assert len(ours(path, "users")) == 1

    kubeconfig.remove_context(path)
    assert path.read_text() == original


def test_the_file_is_never_readable_by_others_not_even_while_written(tmp_path):
    path = tmp_path / "config"
    # Big enough that writing it takes a while: a temporary file would be seen mid-write.
    clusters = [
        {"name": f"c{i}", "cluster": {"server": f"https://c{i}", "x": "y" * 4096}}
        for i in range(500)
    ]
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": clusters}))
    path.chmod(0o600)
    seen = {}
    done = threading.Event()

    def watch():
        while not done.is_set():
            for entry in os.scandir(tmp_path):
                with contextlib.suppress(FileNotFoundError):
                    seen[entry.name] = seen.get(entry.name, 0) | entry.stat().st_mode

    watcher = threading.Thread(target=watch)
    previous = os.umask(0o022)
    watcher.start()
    try:
        kubeconfig.add_context(path, SERVER, CA, "our-token")
    finally:
        done.set()
        watcher.join()
        os.umask(previous)
    assert len(seen) >= 2, f"the watcher saw no temporary file: {seen}"
    for name, modes in seen.items():
        if name.endswith(".lock"):
            continue
        assert stat.S_IMODE(modes) & 0o077 == 0, f"{name} was {oct(stat.S_IMODE(modes))}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_symlink_is_written_through_and_stays_a_link(tmp_path):
    target = tmp_path / "dotfiles" / "kubeconfig"
    target.parent.mkdir()
    target.write_text(KUBECTL_STYLE)
    link = tmp_path / "config"
    link.symlink_to(target)
    kubeconfig.add_context(link, SERVER, CA, "our-token")
    assert link.is_symlink()
    assert ours(target, "contexts")
    kubeconfig.remove_context(link)
    assert link.is_symlink()
    assert target.read_text() == KUBECTL_STYLE


def test_another_meshs_context_of_the_same_name_is_left_alone(tmp_path):
    path = tmp_path / "config"
    kubeconfig.add_context(path, SERVER, CA, "other-mesh-token")
    kubeconfig.remove_context(path, server="https://127.0.0.1:1")  # not ours
    assert ours(path, "clusters")
    kubeconfig.remove_context(path, server=SERVER)
    assert not path.exists()  # `up` created it, and nothing else is in it


def test_a_kubeconfig_in_json_stays_json(tmp_path):
    path = tmp_path / "config"
    original = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": []}
    path.write_text(json.dumps(original))
    kubeconfig.add_context(path, SERVER, CA, "our-token")
    assert json.loads(path.read_text())["contexts"][0]["name"] == "chaosmesh-local"
    kubeconfig.remove_context(path)
    assert json.loads(path.read_text()) == {**original, "contexts": []}


def test_a_kubeconfig_kubectl_is_writing_is_not_interleaved(tmp_path, monkeypatch):
    path = tmp_path / "config"
    path.write_text(KUBECTL_STYLE)
    (tmp_path / "config.lock").touch()  # as kubectl holds it
    monkeypatch.setattr(kubeconfig, "_LOCK_WAIT_S", 0.2)
    with pytest.raises(InvalidInput, match=r"config.lock"):
        kubeconfig.add_context(path, SERVER, CA, "our-token")
    assert path.read_text() == KUBECTL_STYLE
