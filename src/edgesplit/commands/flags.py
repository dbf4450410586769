"""Numbers that should raise a flag: one ``warning:`` line on stderr with the likely cause.

Each check shows what was measured beside what was asked for, and says what to do. They
never change a result or the exit status, and they go to stderr, so ``--json`` stdout
stays one document.

* :func:`check_fidelity`: a profile whose per-node medians add up to less than
  :data:`MIN_FIDELITY` of its end-to-end median (the nodes, timed one by one, ran faster
  than the whole: load on the machine during the end-to-end passes, or too few repeats).
* :func:`check_fit`: a predictor row with R² below 0 (worse than predicting the mean) or
  undefined (one sample or a constant target).
* :func:`check_sim_vs_measured`: a simulated and a measured figure more than
  :data:`MAX_RATIO` apart (the simulator's host speeds are not this machine's, or load).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from edgesplit.commands.common import err_console

MIN_FIDELITY = 0.8
MAX_RATIO = 2.0


def warn(line: str) -> None:
    """One ``warning: ...`` line on stderr (never wrapped, no markup)."""
    err_console.print(f"warning: {line}", soft_wrap=True, markup=False, highlight=False)


def check_fidelity(prof: Any, source: str, rescale: str = "plan with --calibrate") -> bool:
    """Warn when ``prof`` (a :class:`~edgesplit.predict.profile.Profile`) has fidelity below
    :data:`MIN_FIDELITY`; True when it warned. ``rescale``: how to rescale its node times
    to the whole where it is used."""
    fid = prof.fidelity
    if not math.isfinite(fid) or fid >= MIN_FIDELITY:
        return False
    warn(
        f"profile {source!r} has fidelity {fid:.2f} (node medians sum to "
        f"{prof.sum_of_medians_s * 1e3:.3g} ms, the whole forward took "
        f"{prof.end_to_end.median_s * 1e3:.3g} ms; asked for {prof.repeats} repeats on "
        f"{prof.host.threads} thread(s)), below {MIN_FIDELITY}: likely load on the machine "
        "while profiling or too few --repeats; re-profile on a quiet machine with more "
        f"--repeats, or {rescale}"
    )
    return True


def check_fit(rows: Iterable[tuple[str, str, dict[str, float]]]) -> int:
    """Warn, one line per predictor, about the ``(predictor, kind, metrics)`` rows whose R²
    is below 0 or undefined; returns how many lines it printed."""
    bad: dict[str, list[str]] = {}
    for name, kind, m in rows:
        r2 = m.get("r2")
        if r2 is not None and math.isfinite(r2) and r2 >= 0:
            continue
        shown = "n/a" if r2 is None or not math.isfinite(r2) else f"{r2:.3g}"
        bad.setdefault(name, []).append(f"{kind} (n={int(m.get('n', 0))}, R² {shown})")
    for name, kinds in bad.items():
        warn(
            f"{name}: R² below 0 (worse than predicting the mean) or undefined for "
            f"{', '.join(kinds)}: likely too few samples of those kinds or a constant "
            "target; profile more models that hold them before trusting their predictions"
        )
    return len(bad)


def check_sim_vs_measured(what: str, simulated: float, measured: float, why: str) -> bool:
    """Warn when ``simulated`` and ``measured`` differ by more than :data:`MAX_RATIO`."""
    if not (simulated > 0 and measured > 0):
        return False
    ratio = max(simulated, measured) / min(simulated, measured)
    if ratio <= MAX_RATIO:
        return False
    side = "slower" if measured > simulated else "faster"
    warn(
        f"{what}: measured {measured:.4g} s is {ratio:.1f}x {side} than simulated "
        f"{simulated:.4g} s: {why}"
    )
    return True
