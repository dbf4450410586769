"""The malformed-input table: 10 kinds x 8 file types, each through the CLI (issue 11, point 5).

The cases are those of ``benchmarks/bench_malformed_inputs.py`` (one definition, the kinds
and commands are listed there). Every case runs in-process through ``edgesplit.cli.main``
(the ``cli`` harness). The slow test runs two kinds of every file type again as real
processes, as a user meets them, and checks that no traceback reaches the terminal; all 80
as real processes is the benchmark's job (each process imports torch: minutes on 2 cores).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_malformed_inputs.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_malformed_inputs", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


bench = _bench()


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory, cli_uncaptured: Any) -> Any:
    """Valid profiles, predictor and plan made by the CLI in-process, plus written files."""
    return bench.Bases.make(tmp_path_factory.mktemp("bases"), run=cli_uncaptured)


@pytest.fixture(scope="module")
def cases(bases: Any) -> dict[tuple[str, str], Any]:
    return {(c.ftype, c.kind): c for c in bench.build_cases(bases)}


@pytest.mark.parametrize("kind", bench.KINDS)
@pytest.mark.parametrize("ftype", bench.TYPES)
def test_malformed_file_is_one_line_exit_2(cli, cases, ftype: str, kind: str) -> None:
    case = cases[(ftype, kind)]
    bench.write_case(case)
    result = cli(*case.argv, cwd=case.file.parent)
    row = bench.check_case(case, result.code, result.stdout, result.stderr)
    failed = [name for name, ok in row["checks"].items() if not ok]
    assert not failed, f"{ftype}/{kind}: {failed}: {row['line']}"


@pytest.mark.slow
def test_real_processes_print_one_line(bases: Any) -> None:
    rows = bench.run_all(kinds=("binary", "yaml-syntax"), jobs=2, bases=bases)
    assert len(rows) == 2 * len(bench.TYPES)
    failed = [f"{r['file_type']}/{r['kind']}: {r['line']}" for r in rows if not r["ok"]]
    assert not failed, "\n" + bench.table(rows)
