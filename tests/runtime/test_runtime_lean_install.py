"""The lean device install (issue 13 point 9): what the package metadata requires, and what
importing the engine, the server and the Python API pulls in.

Oracles: the installed distribution's own metadata (``importlib.metadata.requires``) and
``sys.modules`` of a fresh interpreter after the imports (and after a real in-process
request through a server), so a module-level import of a heavy package anywhere on those
paths fails here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import requires

import pytest

from edgesplit.cli import FULL_ONLY, error_line

#: Import names of the packages the device tier must not need.
HEAVY = ("ray", "cvxpy", "ortools", "matplotlib", "sklearn", "deap", "simpy", "highspy")
#: Their distribution names, as pyproject.toml spells them.
HEAVY_DISTS = (
    "ray",
    "cvxpy",
    "ortools",
    "matplotlib",
    "scikit-learn",
    "deap",
    "simpy",
    "highspy",
)
LEAN = (
    "torch",
    "safetensors",
    "httpx",
    "fastapi",
    "uvicorn",
    "websockets",
    "pydantic",
    "pyyaml",
    "numpy",
    "zstandard",
)


def _split_requires() -> dict[str, set[str]]:
    """Extra ('' for the base install) -> distribution names it requires."""
    out: dict[str, set[str]] = {}
    for line in requires("edgesplit") or []:
        spec, _, marker = line.partition(";")
        name = re.split(r"[\s\[<>=!~]", spec.strip(), maxsplit=1)[0].lower()
        extra = re.search(r'extra\s*==\s*"([^"]+)"', marker)
        out.setdefault(extra.group(1) if extra else "", set()).add(name)
    return out


def test_metadata_base_is_lean_full_has_the_rest_dev_adds_tools() -> None:
    groups = _split_requires()
    base, full, dev = groups[""], groups["full"], groups["dev"]
    assert set(LEAN) <= base
    assert not base & set(HEAVY_DISTS), base & set(HEAVY_DISTS)
    assert set(HEAVY_DISTS) <= full
    assert "edgesplit" in dev and {"pytest", "ruff", "mypy"} <= dev
    # The CLI's "install the full extra" hint knows every heavy import name.
    assert set(HEAVY) <= FULL_ONLY


def test_importing_engine_server_api_pulls_in_no_heavy_package() -> None:
    code = (
        "import sys, json\n"
        "import edgesplit.runtime.engine, edgesplit.runtime.server, edgesplit.runtime.api\n"
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []


SERVE_AND_INFER = """
import json, sys
import torch
from edgesplit import Deployment
from edgesplit.plan.types import Plan
from edgesplit.runtime.server import BackgroundServer, ServerConfig, create_app
from edgesplit.system.topology import Topology

app = create_app(ServerConfig(models=("mnist_cnn",)))
n = len(app.state.store.model("mnist_cnn").graph.nodes)
with BackgroundServer(app) as server:
    topo = Topology.model_validate({
        "devices": [{"name": "device", "url": "local"}, {"name": "edge", "url": server.url}],
        "links": [{"a": "device", "b": "edge", "bandwidth": "1gbit", "codecs": ["zstd"]}],
    })
    plan = Plan.two_tier("mnist_cnn", "manual", n, 3, devices=("device", "edge"))
    with Deployment(plan, topo, codecs={"device|edge": "zstd"}) as dep:
        x = torch.randn(1, 1, 28, 28)
        result = dep.infer(x)
        equal = torch.equal(result.output, dep.module(x))
        hops = [h["dst"] for h in result.record["hops"]]
print(json.dumps({"heavy": [m for m in HEAVY if m in sys.modules], "equal": equal, "hops": hops}))
"""


@pytest.mark.slow
def test_serving_and_running_a_split_request_pulls_in_no_heavy_package() -> None:
    code = f"HEAVY = {list(HEAVY)!r}\n" + SERVE_AND_INFER
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout.strip().splitlines()[-1])
    assert doc == {"heavy": [], "equal": True, "hops": ["edge"]}


def test_a_missing_full_extra_module_is_one_line_naming_the_extra() -> None:
    line = error_line(ModuleNotFoundError("No module named 'cvxpy'", name="cvxpy"))
    assert line is not None and "pip install 'edgesplit[full]'" in line and "\n" not in line
    # Any other missing module is a bug and keeps its traceback.
    assert error_line(ModuleNotFoundError("No module named 'foo'", name="foo")) is None
