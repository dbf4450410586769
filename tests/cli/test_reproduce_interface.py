"""``edgesplit reproduce``: one interface for the five reproductions (issue 15 point 22).

Run as a user would, in a real process: ``--list`` names the five registered reproductions
(as a table, or as pure JSON with ``--json``), ``reproduce`` alone prints the same list,
an unknown name is one ``error:`` line naming the valid ones (exit 2), and every
reproduction takes the same ``--quick``, ``--out`` and ``--json``. One ``--quick --json``
run, which checks that stdout is the ``results.json`` document and nothing else, is in
``tests/earlyexit/test_zuo_reproduce.py`` (the fastest; its one run serves both files).
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest

from edgesplit.experiments.registry import REPRODUCTIONS
from tests.conftest import assert_input_error

NAMES = ("luger2023", "gao2019", "zuo2024", "tuli2021", "samadi")


def test_registry_holds_the_five() -> None:
    assert tuple(REPRODUCTIONS) == NAMES
    for r in REPRODUCTIONS.values():  # each module's reproduce() runs in its own test
        assert importlib.util.find_spec(r.module) is not None, r.module
        assert 0 < r.quick_budget_s <= 180  # issue 15: < 3 minutes on 2 cores


def test_list_as_table_and_as_json(cli: Any, cli_subprocess: Any) -> None:
    table = cli("reproduce", "--list")
    assert table.code == 0
    assert all(name in table.stdout for name in NAMES)
    bare = cli_subprocess("reproduce")  # no name: the list, not a usage error
    assert bare.code == 0 and "Traceback" not in bare.stderr
    assert all(name in bare.stdout for name in NAMES)
    doc = cli_subprocess("reproduce", "--list", "--json")
    assert doc.code == 0
    rows = json.loads(doc.stdout)  # pure JSON: nothing else on stdout
    assert [r["name"] for r in rows] == list(NAMES)
    for row in rows:
        assert row["citation"] and row["reproduces"]
        assert row["default_out"] == f"results/{row['name']}"


def test_unknown_name_names_the_valid_ones(cli_subprocess: Any) -> None:
    assert_input_error(cli_subprocess("reproduce", "luger"), "'luger'", *NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_common_options_on_every_reproduction(name: str, cli: Any) -> None:
    res = cli("reproduce", name, "--help")
    assert res.code == 0
    for option in ("--quick", "--out", "--json"):
        assert option in res.stdout, (name, option)
    assert f"results/{name}" in res.stdout  # the default --out
