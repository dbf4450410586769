"""The output contract every ``edgesplit reproduce NAME`` run keeps (issue 15 point 22).

:func:`check_outputs` is called by each reproduction's test on its one ``--quick`` run:
``results.json`` is strict JSON (no NaN/Infinity) holding the shared fields of
:mod:`edgesplit.experiments.registry`, the listed figures are PNGs that exist, and
``comparison.md`` is a paper-vs-ours table whose every row gives a reason.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

PNG = b"\x89PNG\r\n\x1a\n"


def _reject(token: str) -> Any:
    raise AssertionError(f"results.json holds {token}, which is not JSON")


def check_outputs(out: Path, name: str, *, quick: bool = True) -> dict[str, Any]:
    """Assert the shared contract on ``out``; returns the parsed ``results.json``."""
    from edgesplit.experiments.registry import REPRODUCTIONS

    text = (out / "results.json").read_text()
    doc: dict[str, Any] = json.loads(text, parse_constant=_reject)
    assert doc["reproduction"] == name
    assert doc["citation"] == REPRODUCTIONS[name].citation
    assert doc["quick"] is quick
    load = doc["load_average"]
    assert set(load) == {"start", "end"}
    for when in ("start", "end"):
        assert len(load[when]) == 3 and all(math.isfinite(v) and v >= 0 for v in load[when])
    assert doc["figures"], "no figure listed"
    umask = os.umask(0)
    os.umask(umask)
    for path in doc["figures"]:
        png = Path(path)
        assert png.parent == out, png
        assert png.read_bytes()[:8] == PNG, png
        assert stat.S_IMODE(png.stat().st_mode) == 0o666 & ~umask, png  # the user's umask
    assert stat.S_IMODE((out / "results.json").stat().st_mode) == 0o666 & ~umask
    md = (out / "comparison.md").read_text()
    text_lines = md.splitlines()
    first = next(i for i, line in enumerate(text_lines) if line.startswith("|"))
    lines = []  # the first table: paper vs ours
    for line in text_lines[first:]:
        if not line.startswith("|"):
            break
        lines.append(line)
    header = lines[0].lower()
    assert "paper" in header or "thesis" in header, header
    assert "ours" in header and ("why" in header or "reason" in header), header
    rows = [r for r in lines[1:] if not set(r) <= set("|-: ")]
    assert rows, "comparison.md has no paper-vs-ours row"
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) >= 3 and cells[-1], f"comparison.md row without a reason: {row}"
        assert not {"nan", "inf", "-inf"} & {c.lower() for c in cells}, row
    return doc
