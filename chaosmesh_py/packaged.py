"""The files that ship inside the package besides code: Bookinfo's experiments and routing.

One copy of each: ``chaosmesh_py/examples`` is a link to the repository's ``experiments/``, and a
built wheel carries the files themselves, so an installed package (``pip install .``, no source
tree) runs ``chaosmesh local up``, the demo and the experiments all the same. Istio's CRDs are
not among them: ``chaosmesh local up --crds FILE`` (or ``CHAOSMESH_ISTIO_CRDS``) names them.

The package is installed as files (Envoy and ``chaos run`` are given paths), so the resources
are read as paths.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DEMO_EXPERIMENT = "bookinfo-ratings-delay.json"


def examples_dir() -> Path:
    """Where the packaged experiments are (in a source tree: ``experiments/``)."""
    return Path(str(files("chaosmesh_py").joinpath("examples"))).resolve()


def experiments() -> list[Path]:
    """Every packaged experiment, by name."""
    return sorted(examples_dir().glob("*.json"))


def bookinfo_manifests() -> tuple[Path, ...]:
    """Bookinfo's routing (VirtualServices, DestinationRules) and its ingress gateway, in the
    order to apply them: what the local mesh loads and the experiments start from."""
    bookinfo = examples_dir() / "bookinfo"
    return (bookinfo / "mesh.yaml", bookinfo / "gateway.yaml")
