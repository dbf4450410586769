"""The one document loader, ``edgesplit.io.read_document``: every way a file can be wrong is
one InputError line naming the file (and the field), and good YAML or JSON loads."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from edgesplit.errors import InputError
from edgesplit.io import MAX_DEPTH, read_document, read_mapping, write_atomic


class Inner(BaseModel):
    rate: float = Field(gt=0)


class Doc(BaseModel):
    """pydantic's default ``extra='ignore'``: the loader still refuses unknown keys."""

    name: str
    inner: Inner
    items: list[Inner] = []


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str


GOOD = {"name": "a", "inner": {"rate": 2.0}, "items": [{"rate": 1.0}]}


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json", ""])
def test_good_yaml_and_json_load_by_suffix_or_sniffing(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"doc{suffix}"
    path.write_text(json.dumps(GOOD) if suffix in (".json", "") else "name: a\ninner: {rate: 2}\n")
    doc = read_document(path, Doc)
    assert doc.name == "a" and doc.inner.rate == 2.0


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfname: a\ninner: {rate: 1}\n")
    assert read_document(path, Doc).name == "a"


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("empty.yaml", b"", "is empty"),
        ("comments.yaml", b"# nothing here\n", "is empty"),
        ("blank.json", b"  \n\n", "is empty"),
        ("nul.yaml", b"name: a\x00", "is binary"),
        ("latin1.yaml", b"name: caf\xe9\n", "not UTF-8 text (byte 0xe9 at offset 9)"),
        ("list.yaml", b"- name: a\n", "holds a list at the top level"),
        ("scalar.json", b"42", "holds a single int value at the top level"),
        ("text.yaml", b"just words\n", "holds a single str value at the top level"),
        ("bad.yaml", b"name: [a\ninner: 1\n", "not valid YAML: line 2 column"),
        ("tab.yaml", b"name: a\n\tinner: 1\n", "not valid YAML: line 2"),
        ("bad.json", b'{"name": "a",}', "not valid JSON: line 1 column 14"),
        ("type.yaml", b"name: a\ninner: 3\n", "field 'inner': Input should be a valid"),
        ("missing.yaml", b"inner: {rate: 1}\n", "field 'name': Field required"),
        ("range.yaml", b"name: a\ninner: {rate: -1}\n", "field 'inner.rate': Input should be"),
        ("extra.yaml", b"name: a\nnmae: b\ninner: {rate: 1}\n", "field 'nmae': unknown field"),
        ("nested.yaml", b"name: a\ninner: {rate: 1, rtae: 2}\n", "field 'inner.rtae': unknown"),
        ("listed.yaml", b"name: a\ninner: {rate: 1}\nitems: [{rate: 1}, {r: 2}]\n", "'items.1.r'"),
    ],
)
def test_every_bad_file_is_one_line_naming_file_and_fix(
    tmp_path: Path, name: str, data: bytes, needle: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(InputError) as info:
        read_document(path, Doc, what="test file", schema="system")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"test file {str(path)!r}")
    assert needle in message, message


def test_schema_fix_is_named_for_a_field_error(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("name: a\n")
    with pytest.raises(InputError, match=r"see `edgesplit schema system`$"):
        read_document(path, Doc, schema="system")


def test_missing_path_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"does not exist; create it with `edgesplit profile`"):
        read_mapping(tmp_path / "nope.json", what="profile", make="edgesplit profile")
    with pytest.raises(InputError, match="is a directory"):
        read_mapping(tmp_path)


def test_deep_nesting_and_alias_bombs_are_refused(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(InputError, match=f"nests deeper than {MAX_DEPTH} levels"):
        read_mapping(deep)
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="expands to more than"):
        read_mapping(bomb)


def test_an_oversized_file_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgesplit.io

    monkeypatch.setattr(edgesplit.io, "MAX_BYTES", 10)
    path = tmp_path / "big.yaml"
    path.write_text("name: " + "a" * 20 + "\n")
    with pytest.raises(InputError, match="is 27 bytes; input files are limited to 10"):
        read_mapping(path)


def test_models_that_allow_extra_keep_them(tmp_path: Path) -> None:
    path = tmp_path / "open.json"
    path.write_text('{"name": "a", "upstream_field": 1}')
    assert read_document(path, Open).model_extra == {"upstream_field": 1}


def test_prepare_rewrites_before_validation(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("title: a\ninner: {rate: 1}\n")

    def upgrade(doc: dict[str, object]) -> dict[str, object]:
        doc["name"] = doc.pop("title")
        return doc

    assert read_document(path, Doc, prepare=upgrade).name == "a"


def test_write_atomic_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "x.json"
    write_atomic(target, "{}\n")
    assert target.read_text() == "{}\n"
    with pytest.raises(TypeError):
        write_atomic(target, 3)  # type: ignore[arg-type]
    assert target.read_text() == "{}\n" and list(target.parent.iterdir()) == [target]


def test_write_atomic_gives_the_user_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        path = write_atomic(tmp_path / "out.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
