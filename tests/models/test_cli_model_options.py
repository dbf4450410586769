"""The model options as a user meets them on the command line: every command takes them,
bad input is one line naming the input and the fix, and data files are data."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from edgesplit.models import ModelRequest

BERT = ["--model-config", "num_hidden_layers=1", "--model-config", "hidden_size=32",
        "--model-config", "num_attention_heads=2", "--model-config", "intermediate_size=32"]  # fmt: skip


def test_every_model_command_takes_the_same_model_options(cli):
    options = ("--input", "--input-shape", "--example", "--weights", "--model-config",
               "--trust-model-code")  # fmt: skip
    for command in ("inspect", "verify", "profile", "plan", "serve", "run", "run-plan"):
        result = cli(command, "--help")
        assert result.code == 0, result.stderr
        for option in options:
            assert option in result.stdout, f"{command} lacks {option}"


def test_models_lists_the_zoo_and_explains_timm_and_hf(cli):
    out = cli("models").stdout
    assert "alexnet" in out and "timm:NAME" in out and "hf:ARCH" in out and "--model-config" in out


def test_user_model_with_named_integer_inputs(cli, user_dir):
    res = cli("inspect", "usernets:tagger", "--input", "input_ids=1x6:int64", "--json")
    doc = res.json()
    assert doc["cuts"][0]["tensors"][0]["shape"] == [1, 6]


def test_hf_model_inspected_from_the_command_line(cli):
    doc = cli("inspect", "hf:BertModel", "--input", "input_ids=1x8:int64", *BERT, "--json").json()
    assert doc["nodes"] and doc["cuts"][0]["tensors"][0]["shape"] == [1, 8]


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--input", "input_ids=1x6:int64", "--input", "pixels=1x6"], ["pixels", "input_ids"]),
        (["--input", "input_ids=1x6:int65"], ["input_ids", "int65", "int64"]),
        (["--input", "input_ids=1x6x2:float32"], ["input_ids=1x6x2:float32", "--input"]),
        (["--example", "usernets:example_bad"], ["usernets:example_bad", "returned int"]),
        (["--input", "attention_mask=1x6:int64"], ["input_ids", "--input input_ids="]),
        (["--input", "input_ids=1,q"], ["input_ids", "1,q"]),
    ],
)
def test_bad_inputs_are_one_line_naming_the_input(cli, user_dir, assert_input_error, args, names):
    assert_input_error(cli("verify", "usernets:tagger", *args), *names)


def test_hf_input_names_are_checked_despite_kwargs(cli, assert_input_error):
    res = cli("inspect", "hf:BertModel", "--input", "input_ids=1x8:int64", "--input", "foo=1x8",
              *BERT)  # fmt: skip
    assert_input_error(res, "foo", "BertModel.forward takes no input")


def test_a_plan_file_naming_os_abort_is_refused(tmp_path, cli_subprocess, assert_input_error):
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "model": "os:abort",
                "algorithm": "exhaustive",
                "devices": ["edge", "cloud"],
                "assignment": [0, 1],
            }
        )
    )
    res = cli_subprocess("run-plan", str(plan))
    assert res.code != -6 and res.code != 134  # the process was not aborted
    assert_input_error(res, "os:abort", str(plan), "--trust-model-code")


def _small_cnn_plan(
    tmp_path: Path, model: str = "usernets:small_cnn", shape: str | None = "1,3,8,8"
) -> Path:
    request = ModelRequest.from_options(model, input_shape=shape)
    from edgesplit.models.loader import trace_request

    graph, _, example = trace_request(request)
    n = len(graph.nodes)
    plan = tmp_path / "plan.json"
    doc = {
        "model": model,
        "algorithm": "exhaustive",
        "devices": ["edge", "cloud"],
        "assignment": [0 if i < n // 2 else 1 for i in range(n)],
        "meta": {"model_options": request.describe(example)},
    }
    plan.write_text(json.dumps(doc))
    return plan


def test_code_named_in_a_plan_runs_only_when_trusted(tmp_path, cli, user_dir, assert_input_error):
    plan = _small_cnn_plan(tmp_path)
    assert_input_error(cli("run-plan", plan), "usernets:small_cnn", "--trust-model-code")
    doc = cli("run-plan", plan, "--trust-model-code", "--json").json()
    assert doc["equal_to_local"] is True
    # A zoo model in a plan needs no flag.
    zoo = _small_cnn_plan(tmp_path, "mnist_cnn", None)
    assert cli("run-plan", zoo, "--json").json()["equal_to_local"] is True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_serve_and_run_take_the_model_options(tmp_path, user_dir):
    """A user model served with --input-shape; run and run-plan reach it; a missing model is 404."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{user_dir}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-m", "edgesplit.cli"]
    server = subprocess.Popen(
        [
            *cmd,
            "serve",
            "--model",
            "usernets:small_cnn",
            "--input-shape",
            "1,3,8,8",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                models = httpx.get(f"{url}/v1/models", timeout=1).json()["models"]
                break
            except httpx.HTTPError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                time.sleep(0.2)
        assert "usernets:small_cnn" in json.dumps(models)
        run = subprocess.run(
            [
                *cmd,
                "run",
                "usernets:small_cnn",
                "--input-shape",
                "1,3,8,8",
                "--server",
                url,
                "-n",
                "2",
                "--cut",
                "2",
                "--check",
                "--csv",
                str(tmp_path / "r.csv"),
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["requests"] == 2
        plan = _small_cnn_plan(tmp_path)
        ok = subprocess.run(
            [
                *cmd,
                "run-plan",
                str(plan),
                "--trust-model-code",
                "--remote",
                f"cloud={url}",
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout)["equal_to_local"] is True
        missing = httpx.post(
            f"{url}/v1/part", params={"model": "mnist_cnn", "assignment": "0,1", "part": 1}
        )
        assert missing.status_code == 404 and "mnist_cnn" in missing.json()["error"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_run_in_process_takes_the_model_options(tmp_path, cli, user_dir):
    res = cli("run", "usernets:small_cnn", "--input-shape", "1x3x8x8", "-n", "2", "--cut", "1",
              "--csv", tmp_path / "r.csv", "--json")  # fmt: skip
    assert res.json()["requests"] == 2


def test_profiles_and_multidevice_files_naming_code_are_refused(
    tmp_path, cli, user_dir, assert_input_error
):
    prof = tmp_path / "prof.json"
    res = cli("profile", "usernets:small_cnn", "--input-shape", "1,3,8,8", "--repeats", "1",
              "--warmup", "0", "-o", prof, "--json")  # fmt: skip
    assert res.json()["model"] == "usernets:small_cnn"
    for command in ("fit-predictor", "predictor-report"):
        extra = ["-o", str(tmp_path / "pred.json")] if command == "fit-predictor" else []
        assert_input_error(cli(command, prof, *extra), "usernets:small_cnn", "--trust-model-code")
    from edgesplit.predict.accuracy import dataset_from_profiles

    assert len(dataset_from_profiles([prof], trust_model_code=True).nodes) > 0
    md = tmp_path / "md.yaml"
    md.write_text(
        "devices:\n  - name: phone\n    model: os:abort\n    uplink_mbps: 2.5\n"
        "    local: {source: profile}\n    server: {source: profile}\n"
    )
    for command in ("solve", "freeze"):
        extra = ["-o", str(tmp_path / "f.json")] if command == "freeze" else []
        assert_input_error(cli("multidevice", command, md, *extra), "os:abort", str(md))


def test_profile_of_a_two_input_model_records_its_options(tmp_path, cli, user_dir):
    out = tmp_path / "tagger.json"
    inputs = ["--input", "input_ids=1x6:int64", "--input", "attention_mask=1x6:int64"]
    res = cli("profile", "usernets:tagger", *inputs, "--repeats", "1", "--warmup", "0",
              "-o", out, "--json")  # fmt: skip
    assert res.json()["nodes"] > 0
    recorded = json.loads(out.read_text())["model_options"]
    assert recorded == {"inputs": ["input_ids=1x6:int64", "attention_mask=1x6:int64"]}
