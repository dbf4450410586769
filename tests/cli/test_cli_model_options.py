"""Issue 16 items 2 and 7 as a user meets them: a model in the user's own folder is served
and run with ``PYTHONPATH=.``; a server that lacks the model says so by name and the client
exits 2 with that one line; a module Python cannot find, and ``--ray-address`` with no
cluster there, are one line naming the fix."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
EDGESPLIT = [sys.executable, "-m", "edgesplit.cli"]
MODEL = "mypkg.nets:small_cnn"
SHAPE = "1,3,8,8"
NETS = textwrap.dedent(
    """
    import torch
    from torch import nn


    def small_cnn():
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10)
        )
    """
)


@pytest.fixture
def user_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder holding the package ``mypkg`` (not installed), as a user's project would;
    whatever of it a test imported in-process is forgotten afterwards."""
    pkg = tmp_path / "project" / "mypkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(NETS)
    yield pkg.parent
    for name in [m for m in sys.modules if m == "mypkg" or m.startswith("mypkg.")]:
        del sys.modules[name]


def _edgesplit(
    *args: str, cwd: Path, pythonpath: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run(
        [*EDGESPLIT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gcs_servers() -> list[int]:
    """Pids of Ray GCS servers on this machine: what ``ray.init(address='auto')`` joins."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "gcs_server":
                pids.append(int(comm.parent.name))
        except OSError:  # the process ended while scanned
            continue
    return pids


def _last_error(proc: Any) -> str:
    """Exit 2, no traceback, nothing on stdout; the last stderr line is the ``error:`` line.

    Progress lines may precede it on stderr (they go there when piped)."""
    assert proc.returncode == 2, f"exit {proc.returncode}: {proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == "", proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), proc.stderr
    assert sum(line.startswith("error: ") for line in lines) == 1, proc.stderr
    return lines[-1]


@pytest.mark.slow
def test_own_model_served_and_run_from_its_folder_and_a_missing_model_is_named(
    user_folder: Path, tmp_path: Path, cli
) -> None:
    """``PYTHONPATH=. edgesplit serve --model mypkg.nets:small_cnn --input-shape ...`` then
    ``run`` against it, both processes started from the module's folder; ``run`` and
    ``run-plan`` of a model the server lacks exit 2 with the server's 404 naming both."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": "."}
    server = subprocess.Popen(
        [*EDGESPLIT, "serve", "--model", MODEL, "--input-shape", SHAPE, "--port", str(port)],
        cwd=user_folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                served = httpx.get(f"{url}/v1/models", timeout=1).json()["models"]
                break
            except httpx.HTTPError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "server did not answer within 240 s"
                time.sleep(0.2)
        assert [m["name"] for m in served] == [MODEL]
        assert served[0]["input_shape"] == [1, 3, 8, 8]

        csv = tmp_path / "r.csv"
        ran = _edgesplit("run", MODEL, "--input-shape", SHAPE, "--server", url, "-n", "2",
                         "--cut", "2", "--check", "--csv", str(csv), "--json",
                         cwd=user_folder, pythonpath=".")  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        summary = json.loads(ran.stdout)
        # Both requests reached the server (no local fallback) and equal local inference.
        assert (summary["requests"], summary["fallbacks"], summary["mismatches"]) == (2, 0, 0)
        assert summary["splits"] == [2]
        assert len(csv.read_text().strip().splitlines()) == 1 + 2

        # The client side goes through cli.main in-process: the same exit status and lines.
        lacking = cli("run", "mnist_cnn", "--server", url, "-n", "1", "--csv", tmp_path / "a.csv")
        line = _last_error(lacking)
        assert "404" in line and "'mnist_cnn'" in line and MODEL in line, line
        plan = cli("run-plan", "examples/plan-two-tier.json", "--remote", f"cloud={url}", "--json")
        line = _last_error(plan)
        assert "404" in line and "'alexnet'" in line and MODEL in line, line
        assert "assignment" not in line, line
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_module_python_cannot_find_says_pythonpath_or_pip(user_folder: Path) -> None:
    """Run from another folder without PYTHONPATH: one line with both fixes (the serve
    test shows ``PYTHONPATH=.`` from the module's folder working)."""
    elsewhere = user_folder.parent / "elsewhere"
    elsewhere.mkdir()
    lost = _edgesplit("inspect", MODEL, "--input-shape", SHAPE, cwd=elsewhere)
    line = _last_error(lost)
    assert "'mypkg'" in line and "PYTHONPATH=." in line and "pip install" in line, line
    assert len([ln for ln in lost.stderr.splitlines() if ln.strip()]) == 1, lost.stderr


def test_user_code_failures_each_name_their_cause(
    user_folder: Path, cli, assert_input_error, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing attribute, a missing dependency and an error inside the module: one line
    each, naming what to fix (in-process: the line and exit 2 are the contract)."""
    pkg = user_folder / "mypkg"
    (pkg / "needs.py").write_text("import edgesplit_no_such_dependency\n")
    (pkg / "broken.py").write_text("VALUE = 1\nraise RuntimeError('weights missing')\n")
    monkeypatch.syspath_prepend(str(user_folder))
    cases = {
        "mypkg.nets:big_cnn": ("'big_cnn'", "check the name after ':'"),
        "mypkg.nots:small_cnn": ("'nots'", "check the name before ':'"),
        "mypkg.needs:f": ("'edgesplit_no_such_dependency'", "pip install it"),
        "mypkg.broken:f": ("RuntimeError: weights missing", "broken.py:2"),
    }
    for model, names in cases.items():
        assert_input_error(cli("inspect", model, "--input-shape", SHAPE), model, *names)
    example = cli("inspect", MODEL, "--example", "mypkg.nets:no_example")
    assert_input_error(example, "--example", "'no_example'")


def test_ray_address_without_a_cluster_is_one_line(cli, assert_input_error) -> None:
    """No Ray cluster listens at the address: refused before any model is loaded, in one
    line naming `ray start --head` and dropping the flag (ray.init would retry for minutes)."""
    port = _free_port()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        res = cli("serve", "--model", "alexnet", "--ray-replicas", "1", "--ray-address", address)
        assert_input_error(res, address, "no Ray cluster", "ray start --head", "drop --ray-address")
    res = cli("serve", "--ray-replicas", "1", "--ray-address", "nonsense")
    assert_input_error(res, "'nonsense'", "HOST:PORT", "ray://HOST:PORT")
    res = cli("serve", "--ray-address", "auto")
    assert_input_error(res, "--ray-address", "--ray-replicas")


@pytest.mark.slow
def test_ray_address_auto_without_a_cluster_in_a_process() -> None:
    """``serve --ray-address auto`` with no cluster on this machine: exit 2, one line, no
    traceback (it printed 51 lines before)."""
    if _gcs_servers():
        pytest.skip("a Ray cluster runs on this machine (another test's), so 'auto' would join it")
    proc = _edgesplit("serve", "--model", "mnist_cnn", "--ray-replicas", "1", "--ray-address",
                      "auto", "--port", str(_free_port()), cwd=ROOT)  # fmt: skip
    line = _last_error(proc)
    assert len([ln for ln in proc.stderr.splitlines() if ln.strip()]) == 1, proc.stderr
    assert "'auto'" in line and "no Ray cluster" in line and "ray start --head" in line, line
