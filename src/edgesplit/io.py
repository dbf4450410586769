"""Reading input documents and writing output files, both without surprises.

Reading: :func:`read_document` is the one loader of every input file (system, profile,
plan, predictor, condition schedule, multi-device, early-exit, cluster, Tarnawski). It
reads YAML or JSON (by suffix, else by the first character), and turns every way a file
can be wrong into one :class:`~edgesplit.errors.InputError` line that names the file,
the field (pydantic's ``loc``) and the fix::

    system file 'sys.yaml': field 'links.0.bandwidth': cannot parse '7 parsecs' ...; see `edgesplit schema system`

What it refuses, in the order checked: a missing path, a directory, a file over
:data:`MAX_BYTES`, an empty file, binary bytes (NUL) or bytes that are not UTF-8, a YAML
or JSON syntax error (reported by line and column, one line), nesting deeper than
:data:`MAX_DEPTH` or YAML aliases that expand past :data:`MAX_ITEMS` values, a top level
that is not a mapping, and then whatever the pydantic model rejects: wrong types,
missing fields, bad units and unknown fields. A model that neither forbids nor allows
extra fields (pydantic's default, ``ignore``) is treated as forbidding them, so a
misspelt key is an error rather than a silently used default.

Writing: :func:`write_atomic` goes through a temporary file and a rename, so a failed
command never leaves a half-written output file. :func:`json_safe` turns a document into
strict JSON data (``nan``/``inf`` become ``null``), for every ``--json`` printout and
``results.json``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from edgesplit.errors import InputError

M = TypeVar("M", bound=BaseModel)

#: Largest input file read (the biggest shipped input, a Tarnawski workload, is < 0.2 MiB).
MAX_BYTES = 64 * 1024 * 1024
#: Deepest nesting of mappings and lists accepted (real inputs stay below 8).
MAX_DEPTH = 64
#: Most values a document may expand to once YAML aliases are followed (billion laughs).
MAX_ITEMS = 5_000_000

_YAML_SUFFIXES = (".yaml", ".yml")
# libyaml's loader when built in (same documents and errors as yaml.safe_load, faster).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _named(what: str, path: Path) -> str:
    return f"{what} {str(path)!r}"


def _fix(schema: str | None) -> str:
    return f"see `edgesplit schema {schema}`" if schema else "fix the file"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _decode(raw: bytes, where: str) -> str:
    if b"\x00" in raw:
        raise InputError(f"{where} is binary, not a YAML or JSON text file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(
            f"{where} is not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}); "
            "save it as UTF-8 YAML or JSON"
        ) from None


def _parse(text: str, path: Path, where: str) -> Any:
    as_json = path.suffix.lower() == ".json" or (
        path.suffix.lower() not in _YAML_SUFFIXES and text.lstrip()[:1] in ("{", "[")
    )
    try:
        if as_json:
            return json.loads(text)
        return yaml.load(text, Loader=_SAFE_LOADER)
    except json.JSONDecodeError as err:
        raise InputError(
            f"{where} is not valid JSON: line {err.lineno} column {err.colno}: {err.msg}"
        ) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
        problem = _one_line(err.problem or err.context or "syntax error")
        raise InputError(f"{where} is not valid YAML: {at}{problem}") from None
    except yaml.YAMLError as err:
        raise InputError(f"{where} is not valid YAML: {_one_line(str(err))}") from None
    except RecursionError:
        raise InputError(f"{where} nests deeper than {MAX_DEPTH} levels") from None


def _check_size(doc: Any, where: str) -> None:
    """Depth and expanded size, iteratively (YAML aliases may share one list many times)."""
    stack: list[tuple[Any, int]] = [(doc, 0)]
    seen = 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_ITEMS:
            raise InputError(f"{where} expands to more than {MAX_ITEMS:,} values")
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth >= MAX_DEPTH:
            raise InputError(f"{where} nests deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


def read_mapping(
    path: str | Path,
    *,
    what: str = "file",
    schema: str | None = None,
    make: str | None = None,
) -> dict[str, Any]:
    """The top-level mapping of a YAML or JSON file, or one-line :class:`InputError`.

    ``what`` names the file in messages ("system file"); ``schema`` names its entry in
    ``edgesplit schema`` for the fix; ``make`` is the command that creates such a file.
    """
    path = Path(path)
    where = _named(what, path)
    if not path.exists():
        fix = f"create it with `{make}`" if make else "give the path of a YAML or JSON file"
        raise InputError(f"{where} does not exist; {fix}")
    if path.is_dir():
        raise InputError(f"{where} is a directory; give the path of a YAML or JSON file")
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise InputError(f"{where} is {size:,} bytes; input files are limited to {MAX_BYTES:,}")
        raw = path.read_bytes()
    except OSError as err:
        raise InputError(f"{where} cannot be read: {err.strerror or err}") from None
    text = _decode(raw, where)
    doc = _parse(text, path, where) if text.strip() else None
    if doc is None:
        raise InputError(f"{where} is empty; it must hold a mapping of fields, {_fix(schema)}")
    _check_size(doc, where)
    if not isinstance(doc, dict):
        kind = "a list" if isinstance(doc, list) else f"a single {type(doc).__name__} value"
        raise InputError(
            f"{where} holds {kind} at the top level; it must be a mapping of fields, {_fix(schema)}"
        )
    return typing.cast(dict[str, Any], doc)


def validation_line(err: ValidationError) -> str:
    """pydantic's first error as ``field 'a.0.b': message`` (plus how many more there are)."""
    errors = err.errors()
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = _one_line(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown field (misspelt, or from another file type)"
    if first["type"] not in ("missing", "extra_forbidden") and "input" in first:
        given = repr(first["input"])
        msg += f" (got {given if len(given) <= 40 else given[:37] + '...'})"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"field {loc!r}: {msg}{more}"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (``X``, ``list[X]``, ``X | None``, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple, set, frozenset, dict):
        args = typing.get_args(annotation)
        if origin is dict:
            args = args[1:]
        return [m for a in args for m in _models_in(a)]
    return []


def _unknown_field(doc: Any, model: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    """The first key a model with ``extra='ignore'`` would silently drop, as a loc."""
    if not isinstance(doc, dict) or model.model_config.get("extra") in ("allow", "forbid"):
        return None
    known = {name: f for name, f in model.model_fields.items()}
    known.update({f.alias: f for f in model.model_fields.values() if f.alias})
    for key, value in doc.items():
        if key not in known:
            return ".".join(str(p) for p in (*loc, key))
        for sub in _models_in(known[key].annotation):
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                at = (*loc, key, i) if isinstance(value, list) else (*loc, key)
                found = _unknown_field(item, sub, at)
                if found:
                    return found
    return None


def validate(
    doc: Any,
    model: type[M],
    path: str | Path,
    *,
    what: str = "file",
    schema: str | None = None,
) -> M:
    """``model.model_validate(doc)``, with every failure as one line naming file and field."""
    where = _named(what, Path(path))
    unknown = _unknown_field(doc, model, ())
    if unknown:
        raise InputError(
            f"{where}: field {unknown!r}: unknown field (misspelt, or from another file type); "
            f"{_fix(schema)}"
        )
    try:
        return model.model_validate(doc)
    except ValidationError as err:
        raise InputError(f"{where}: {validation_line(err)}; {_fix(schema)}") from None
    except (InputError, ValueError, TypeError) as err:
        raise InputError(f"{where}: {_one_line(str(err))}; {_fix(schema)}") from None


def read_document(
    path: str | Path,
    model: type[M],
    *,
    what: str = "file",
    schema: str | None = None,
    make: str | None = None,
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> M:
    """Read a YAML or JSON file and validate it as ``model``; one-line :class:`InputError`.

    ``prepare`` may rewrite the mapping before validation (relative paths, an older
    layout); it may raise :class:`InputError` itself.

    >>> from pydantic import BaseModel
    >>> class Point(BaseModel):
    ...     x: float
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "p.yaml"
    >>> _ = p.write_text("x: 1.5\\n")
    >>> read_document(p, Point).x
    1.5
    >>> _ = p.write_text("y: 1\\n")
    >>> read_document(p, Point, what="point file")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    edgesplit.errors.InputError: point file '...p.yaml': field 'y': unknown field ...
    """
    doc = read_mapping(path, what=what, schema=schema, make=make)
    if prepare is not None:
        doc = prepare(doc)
    return validate(doc, model, path, what=what, schema=schema)


def _umask() -> int:
    """The process umask, read without changing it where Linux reports it (thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (briefly process-wide)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename.

    The file gets the user's umask (``0666 & ~umask``), like ``open(path, "w")``; the
    temporary file ``mkstemp`` makes is 0600, so its mode is set before the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def json_safe(obj: Any) -> Any:
    """``obj`` as strict JSON data: NaN/±inf become ``None``, paths and tuples plain."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # a numpy scalar
        return json_safe(obj.item())
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    return write_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
