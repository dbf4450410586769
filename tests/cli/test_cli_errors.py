"""Usage errors keep the contract too: one ``error:`` line naming the command's help, exit 2."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("plan",), "Missing argument 'model'. (see `edgesplit plan --help`)"),
        (("plan", "alexnet", "--bogus"), "No such option: --bogus"),
        (("multidevice", "solve"), "`edgesplit multidevice solve --help`"),
        (("simulate", "--intervals", "0"), "'--intervals'"),
        (("nosuchcommand",), "No such command 'nosuchcommand'"),
    ],
)
def test_usage_errors_are_one_line(cli, assert_input_error, args, named) -> None:
    assert_input_error(cli(*args), named)


def test_a_bare_group_prints_its_help_and_exits_2(cli) -> None:
    result = cli("earlyexit")
    assert result.code == 2 and "solve" in result.stdout and "Traceback" not in result.stderr


def test_help_exits_0(cli) -> None:
    result = cli("plan", "--help")
    assert result.code == 0 and "--system" in result.stdout and result.stderr == ""


def _raised(func, *args):  # type: ignore[no-untyped-def]
    try:
        func(*args)
    except Exception as err:
        return err
    raise AssertionError("nothing raised")


def test_errors_escaping_a_command_become_one_line_and_bugs_keep_their_traceback(
    tmp_path,
) -> None:
    import json

    import yaml
    from pydantic import BaseModel

    from edgesplit.cli import error_line

    class Point(BaseModel):
        x: float

    cases = [
        (_raised(yaml.safe_load, "a: [1\nb: 2\n"), "error: not valid YAML: "),
        (_raised(json.loads, "{,}"), "error: not valid JSON: line 1 column 2"),
        (_raised(open, tmp_path / "nope.txt"), "error: No such file or directory: "),
        (_raised(Point.model_validate, {"x": "far"}), "error: invalid Point: field 'x'"),
    ]
    for err, start in cases:
        line = error_line(err)
        assert line is not None and line.startswith(start) and "\n" not in line, line
    assert error_line(RuntimeError("a bug")) is None
