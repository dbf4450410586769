"""Malformed input files through the real CLI: 10 kinds x 8 file types = 80 runs.

Issue 11 point 5: every input file goes through one loader (``edgesplit.io.read_document``),
and a bad one gives exactly one ``error: ...`` line on stderr that names the file, exit
status 2, no traceback, nothing on stdout and no output file. Each run is a fresh
``python -m edgesplit.cli`` process, as a user meets it; runs go in parallel.

Kinds (what a new user gets wrong):

==============  ==============================================================
empty           a 0-byte file
binary          bytes that are not text (``\\x80..\\xff`` and a NUL)
list            a top-level list holding the right mapping
yaml-syntax     an unclosed ``{`` in a ``.yaml`` file
json-syntax     a trailing comma in a ``.json`` file
wrong-type      a field of the wrong type (a string where a list or number goes)
missing-field   a required field left out
bad-value       a bad unit or a value out of range (``7.2 parsecs``, ``-1`` seconds)
unknown-field   a misspelt key beside the right ones
reference       a reference that does not hold: a missing file it names, a profile
                or plan of another model, steps out of order, duplicate host names
==============  ==============================================================

File types and the command each goes through (``OUT`` must not appear afterwards):

system       ``plan mnist_cnn --system F -o OUT``
profile      ``plan mnist_cnn --edge-profile F --bandwidth 7.2mbit -o OUT``
plan         ``run-plan F --remote cloud=URL --json`` (writes no file; stdout checked)
predictor    ``plan mnist_cnn --system S -o OUT``, S's edge device computes with F
conditions   ``run mnist_cnn --schedule F -n 1 --csv OUT``
multidevice  ``multidevice solve F --solver heuristic -o OUT``
earlyexit    ``earlyexit solve F --output OUT``
cluster      ``simulate --cluster F --intervals 1 --out OUT``

    .venv/bin/python benchmarks/bench_malformed_inputs.py [--jobs 4] [--quick]

``--quick`` runs one kind per file type (8 runs) to prove the script works.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
EDGESPLIT = [sys.executable, "-m", "edgesplit.cli"]
MODEL = "mnist_cnn"
KINDS = (
    "empty",
    "binary",
    "list",
    "yaml-syntax",
    "json-syntax",
    "wrong-type",
    "missing-field",
    "bad-value",
    "unknown-field",
    "reference",
)
TYPES = (
    "system",
    "profile",
    "plan",
    "predictor",
    "conditions",
    "multidevice",
    "earlyexit",
    "cluster",
)
NATIVE_SUFFIX = {"profile": ".json", "plan": ".json", "predictor": ".json"}


def cli(*args: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``edgesplit ARGS`` as a fresh process, as a user runs it."""
    return subprocess.run(
        [*EDGESPLIT, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def _made(proc: Any, what: str) -> None:
    if proc.returncode != 0:
        raise RuntimeError(f"cannot make the valid {what}: {proc.stderr.strip()[-500:]}")


@dataclass
class Bases:
    """Valid documents of every type, which each case then breaks in one way."""

    root: Path
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def make(cls, root: Path, run: Callable[..., Any] = cli) -> Bases:
        """Profiles, a predictor and a plan come from the CLI itself (``run``, which returns
        an object with ``returncode`` and ``stderr``); the rest are written here."""
        b = cls(root)
        for model in (MODEL, "lenet"):
            out = root / f"{model}.profile.json"
            _made(run("profile", model, "--repeats", "2", "-o", out, cwd=root), f"{model} profile")
        pred = root / "predictor.json"
        made = cli(
            "fit-predictor",
            root / f"{MODEL}.profile.json",
            "--form",
            "linear",
            "-o",
            pred,
            cwd=root,
        )
        _made(made, "predictor")
        plan = root / "plan.json"
        made = run("plan", MODEL, "--edge-profile", root / f"{MODEL}.profile.json",
                   "--bandwidth", "7.2mbit", "-o", plan, cwd=root)  # fmt: skip
        _made(made, "plan")
        b.docs["profile"] = json.loads((root / f"{MODEL}.profile.json").read_text())
        b.docs["predictor"] = json.loads(pred.read_text())
        b.docs["plan"] = json.loads(plan.read_text())
        b.docs["system"] = b.system(compute={"profile": str(root / f"{MODEL}.profile.json")})
        b.docs["conditions"] = {
            "unit": "requests",
            "steps": [{"at": 0, "bandwidth_mbit": 5, "rtt_ms": 20, "clock_ghz": 2.6}],
        }
        b.docs["multidevice"] = {
            "devices": [
                {"name": "phone", "model": MODEL, "uplink_mbps": 2.5,
                 "local": {"source": "profile", "factor": 10}}
            ]
        }  # fmt: skip
        b.docs["earlyexit"] = yaml.safe_load((ROOT / "examples" / "earlyexit.yaml").read_text())
        b.docs["cluster"] = {
            "intervals": 2,
            "hosts": [
                {"name": "a", "ram_mb": 4096, "power_w": [2.0 + i / 10 for i in range(11)]},
                {"name": "b", "ram_mb": 8192, "power_w": [2.5 + i / 10 for i in range(11)]},
            ],
        }
        return b

    @staticmethod
    def system(compute: dict[str, Any]) -> dict[str, Any]:
        return {
            "devices": [
                {"name": "edge", "tier": "edge", "compute": compute},
                {"name": "cloud", "tier": "cloud",
                 "compute": {"relative_to": "edge", "speed_factor": 8}},
            ],
            "links": [{"a": "edge", "b": "cloud", "bandwidth": "7.2mbit", "rtt": "40ms"}],
        }  # fmt: skip


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``doc`` with ``a.0.b`` set to ``value`` (or deleted when value is DELETE)."""
    out = copy.deepcopy(doc)
    *head, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = out
    for key in head:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return out


DELETE = object()

# Per file type: (path, value) for wrong-type, missing-field, bad-value, unknown-field.
MUTATIONS: dict[str, dict[str, tuple[str, Any]]] = {
    "system": {
        "wrong-type": ("devices", "edge"),
        "missing-field": ("devices.0.tier", DELETE),
        "bad-value": ("links.0.bandwidth", "7.2 parsecs"),
        "unknown-field": ("devices.0.compute.profil", "typo.json"),
    },
    "profile": {
        "wrong-type": ("nodes", "many"),
        "missing-field": ("host", DELETE),
        "bad-value": ("nodes.0.median_s", -1.0),
        "unknown-field": ("repeat", 3),
    },
    "plan": {
        "wrong-type": ("assignment", "0,0,1"),
        "missing-field": ("devices", DELETE),
        "bad-value": ("assignment.0", 7),
        "unknown-field": ("assignments", [0, 1]),
    },
    "predictor": {
        "wrong-type": ("params", "linear"),
        "missing-field": ("type", DELETE),
        "bad-value": ("type", "neural_net"),
        "unknown-field": ("paramz", {}),
    },
    "conditions": {
        "wrong-type": ("steps", "fast"),
        "missing-field": ("steps.0.at", DELETE),
        "bad-value": ("unit", "hours"),
        "unknown-field": ("step", []),
    },
    "multidevice": {
        "wrong-type": ("devices.0.uplink_mbps", "fast"),
        "missing-field": ("devices.0.uplink_mbps", DELETE),
        "bad-value": ("server_load", 1.5),
        "unknown-field": ("server_loads", 0.1),
    },
    "earlyexit": {
        "wrong-type": ("accuracies", "high"),
        "missing-field": ("wireless", {"width_hz": 2.0e7}),  # Shannon needs snr_db too
        "bad-value": ("wireless", {"rate_mbps": -1}),
        "unknown-field": ("accuracy", [0.5]),
    },
    "cluster": {
        "wrong-type": ("hosts", 3),
        "missing-field": ("hosts.0.ram_mb", DELETE),
        "bad-value": ("hosts.0.ram_mb", -1),
        "unknown-field": ("interval", 300),
    },
}


@dataclass
class Case:
    """One malformed file, the command that reads it and what the error line must name."""

    ftype: str
    kind: str
    file: Path
    content: bytes | None  # None: the file is deliberately absent
    argv: list[str]
    named: str  # the path the error line must contain
    out: Path | None
    extra: dict[Path, bytes] = field(default_factory=dict)


def _dump(doc: Any, suffix: str) -> bytes:
    if suffix == ".json":
        return (json.dumps(doc, indent=2) + "\n").encode()
    return yaml.safe_dump(doc, sort_keys=False).encode()


def _content(bases: Bases, ftype: str, kind: str, suffix: str) -> tuple[bytes | None, str]:
    """The broken bytes and the suffix they are written under."""
    doc = bases.docs[ftype]
    if kind == "empty":
        return b"", suffix
    if kind == "binary":
        return bytes(range(0x80, 0x100)) + b"\x00garbage", suffix
    if kind == "list":
        return _dump([doc], suffix), suffix
    if kind == "yaml-syntax":
        text = _dump(doc, ".yaml").decode()
        return (text + "extra: {unclosed: [1, 2\n").encode(), ".yaml"
    if kind == "json-syntax":
        return json.dumps(doc).encode()[:-1] + b', "trailing": 1,}\n', ".json"
    if kind in MUTATIONS[ftype]:
        path, value = MUTATIONS[ftype][kind]
        return _dump(_set(doc, path, value), suffix), suffix
    return _reference(bases, ftype, suffix)


def _reference(bases: Bases, ftype: str, suffix: str) -> tuple[bytes | None, str]:
    doc = bases.docs[ftype]
    lenet = str(bases.root / "lenet.profile.json")
    if ftype == "system":
        return _dump(bases.system({"profile": "missing-profile.json"}), suffix), suffix
    if ftype == "profile":
        return Path(lenet).read_bytes(), suffix
    if ftype == "plan":  # a plan of a smaller model: 3 nodes where mnist_cnn has 9
        return _dump({**doc, "assignment": doc["assignment"][:3], "cut": None}, suffix), suffix
    if ftype == "predictor":
        return None, suffix  # the system file names a predictor file that does not exist
    if ftype == "conditions":
        steps = [{**doc["steps"][0], "at": 5}, {**doc["steps"][0], "at": 1}]
        return _dump({**doc, "steps": steps}, suffix), suffix
    if ftype == "multidevice":
        local = {"source": "profile", "factor": 10, "profile": "missing-profile.json"}
        return _dump(_set(doc, "devices.0.local", local), suffix), suffix
    if ftype == "earlyexit":
        return _dump({**doc, "predictors": "fitted", "profile": lenet}, suffix), suffix
    hosts = [doc["hosts"][0], doc["hosts"][0]]  # cluster: two hosts of one name
    return _dump({**doc, "hosts": hosts}, suffix), suffix


COMMANDS: dict[str, Callable[[Path, Path], list[str]]] = {
    "system": lambda f, out: ["plan", MODEL, "--system", str(f), "-o", str(out)],
    "profile": lambda f, out: ["plan", MODEL, "--edge-profile", str(f), "--bandwidth", "7.2mbit",
                               "-o", str(out)],
    "plan": lambda f, out: ["run-plan", str(f), "--remote", "cloud=http://127.0.0.1:9", "--json"],
    "predictor": lambda f, out: ["plan", MODEL, "--system", str(f.parent / "system.yaml"),
                                 "-o", str(out)],
    "conditions": lambda f, out: ["run", MODEL, "--schedule", str(f), "-n", "1", "--csv", str(out)],
    "multidevice": lambda f, out: ["multidevice", "solve", str(f), "--solver", "heuristic",
                                   "-o", str(out)],
    "earlyexit": lambda f, out: ["earlyexit", "solve", str(f), "--output", str(out)],
    "cluster": lambda f, out: ["simulate", "--cluster", str(f), "--intervals", "1",
                               "--out", str(out)],
}  # fmt: skip


def build_cases(
    bases: Bases, kinds: tuple[str, ...] = KINDS, where: Path | None = None
) -> list[Case]:
    """One case per file type and kind, each in its own folder under ``where``."""
    cases = []
    for ftype in TYPES:
        for kind in kinds:
            d = (where or bases.root) / f"{ftype}-{kind}"
            d.mkdir(exist_ok=True)
            content, suffix = _content(bases, ftype, kind, NATIVE_SUFFIX.get(ftype, ".yaml"))
            f = d / f"{ftype}{suffix}"
            out = d / "OUT.json"
            case = Case(ftype, kind, f, content, COMMANDS[ftype](f, out), f.name, out)
            if ftype == "plan":
                case.out = None
            if ftype == "predictor":  # the case file is referenced from a valid system file
                case.extra[d / "system.yaml"] = _dump(bases.system({"predictor": f.name}), ".yaml")
            if kind == "reference" and ftype in ("system", "multidevice"):
                case.named = "missing-profile.json"
            if kind == "reference" and ftype == "earlyexit":
                case.named = "lenet.profile.json"
            if kind == "reference" and ftype == "profile":
                case.named = f.name
            cases.append(case)
    return cases


def write_case(case: Case) -> None:
    if case.content is not None:
        case.file.write_bytes(case.content)
    for path, data in case.extra.items():
        path.write_bytes(data)


def check_case(case: Case, returncode: int, stdout: str, stderr: str) -> dict[str, Any]:
    """Every check a malformed file's run must pass, and the one line it printed."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    checks = {
        "exit_2": returncode == 2,
        "one_line": len(lines) == 1,
        "starts_error": bool(lines) and lines[0].startswith("error: "),
        "file_named": bool(lines) and case.named in lines[0],
        "no_traceback": "Traceback" not in stderr,
        "no_stdout": stdout == "",
        "no_output_file": case.out is None or not case.out.exists(),
    }
    return {
        "file_type": case.ftype,
        "kind": case.kind,
        "command": "edgesplit " + " ".join(case.argv),
        "exit": returncode,
        "line": lines[0] if len(lines) == 1 else stderr[-600:],
        "checks": checks,
        "ok": all(checks.values()),
    }


def run_case(case: Case) -> dict[str, Any]:
    """Write one case and run it as a fresh process."""
    write_case(case)
    t0 = time.perf_counter()
    proc = cli(*case.argv, cwd=case.file.parent)
    row = check_case(case, proc.returncode, proc.stdout, proc.stderr)
    row["wall_s"] = round(time.perf_counter() - t0, 2)
    return row


def run_all(
    kinds: tuple[str, ...] = KINDS, jobs: int = 4, bases: Bases | None = None
) -> list[dict[str, Any]]:
    """Every case as a fresh process, ``jobs`` at a time (bases made here unless given)."""
    root = Path(tempfile.mkdtemp(prefix="edgesplit-malformed-"))
    try:
        cases = build_cases(bases or Bases.make(root), kinds, root)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            return list(pool.map(run_case, cases))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def table(rows: list[dict[str, Any]]) -> str:
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    cell = {(r["file_type"], r["kind"]): ("ok" if r["ok"] else "FAIL") for r in rows}
    width = max(len(k) for k in kinds) + 2
    lines = ["file type".ljust(13) + "".join(k.rjust(width) for k in kinds)]
    for ftype in TYPES:
        lines.append(
            ftype.ljust(13) + "".join(cell.get((ftype, k), "-").rjust(width) for k in kinds)
        )
    ok = sum(r["ok"] for r in rows)
    lines.append(f"{ok}/{len(rows)} malformed files: exit 2, one line, file named, no traceback, "
                 "no output")  # fmt: skip
    for r in rows:
        if not r["ok"]:
            failed = ", ".join(k for k, v in r["checks"].items() if not v)
            lines.append(f"FAIL {r['file_type']}/{r['kind']} ({failed}): {r['line']}")
    return "\n".join(lines)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import save

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4, help="processes run at once")
    parser.add_argument("--quick", action="store_true", help="one kind per file type (8 runs)")
    args = parser.parse_args()
    kinds = ("binary",) if args.quick else KINDS
    rows = run_all(kinds, args.jobs)
    print(table(rows))
    save(
        "malformed_inputs" + ("_quick" if args.quick else ""),
        {
            "goal": "80/80: exit 2, one error line naming the file, no traceback, no output file",
            "passed": sum(r["ok"] for r in rows),
            "total": len(rows),
            "kinds": list(kinds),
            "file_types": list(TYPES),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
