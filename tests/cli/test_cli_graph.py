"""The graph commands as a user meets them: JSON on stdout, one-line errors, exit 2."""

from __future__ import annotations

import json

import pytest


def test_inspect_alexnet_json_lists_layers_and_cut_bytes(cli):
    doc = cli("inspect", "alexnet", "--json").json()
    assert doc["is_chain"] is True and len(doc["nodes"]) == 21
    assert len(doc["cuts"]) == 22
    assert doc["cuts"][0]["bytes"] == 3 * 224 * 224 * 4


def test_verify_user_model_json_passes_every_cut(cli):
    doc = cli("verify", "torchvision.models:squeezenet1_0", "--input-shape", "1,3,64,64", "--json")
    doc = doc.json()
    assert doc["passed"] and all(c["equal"] for c in doc["cuts"])


def test_profile_writes_a_loadable_file(cli_subprocess, tmp_path):
    out = tmp_path / "prof.json"
    res = cli_subprocess(
        "profile", "mnist_cnn", "--repeats", "3", "--threads", "1", "-o", out, "--json"
    )
    assert res.json()["nodes"] == 9
    assert res.json()["threads"] == 1 and res.json()["timer"].startswith("wall clock")
    saved = json.loads(out.read_text())
    assert saved["format"] == "edgesplit.profile" and saved["host"]["threads"] == 1


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("inspect", "nope"), "nope"),
        (("inspect", "alexnet", "--input-shape", "1,x"), "1,x"),
        (("inspect", "alexnet", "--input-shape", "1,5,224,224"), "alexnet"),
        (("schema", "nope"), "nope"),
    ],
)
def test_errors_are_one_line_with_exit_status_2(cli, assert_input_error, args, named):
    assert_input_error(cli(*args), named)


def test_bad_repeats_writes_no_file_and_no_traceback(cli_subprocess, assert_input_error, tmp_path):
    never = tmp_path / "never.json"
    res = cli_subprocess("profile", "mnist_cnn", "--repeats", "0", "-o", never)
    assert_input_error(res, "repeats")
    assert not never.exists()


def test_schema_profile_is_json_schema(cli):
    assert "nodes" in cli("schema", "profile").json()["properties"]


@pytest.mark.parametrize(
    "name",
    ["cluster", "conditions", "earlyexit", "multidevice", "plan", "predictor", "profile", "system"],
)
def test_every_input_file_type_has_a_schema(cli, name):
    assert cli("schema", name).json()["type"] == "object"
