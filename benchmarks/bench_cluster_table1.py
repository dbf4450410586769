"""Our Table 1 beside Tuli 2021's (issue 8): every policy, mean and 95 % CI over seeds.

Runs the ``edgesplit reproduce tuli2021`` protocol (100 intervals x 3 seeds; ``--quick``:
30 x 2), also writing results/tuli2021/. The in-run baseline is Gillis: the script prints
SplitPlace's reward, response time, SLA violations and accuracy relative to Gillis next to
the same ratios in the paper. Rewards are reported both as eq. 8 with our normalisation
(``reward_eq8``) and as 100 O^MAB (``reward_omab``), each against the paper's one column;
``layer_fraction`` is the share of tasks given a layer split. Nothing is tuned to match the
paper.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _common import save

from edgesplit.experiments.tuli2021 import PAPER, reproduce

KEYS = (
    ("reward_eq8", "reward"),
    ("reward_omab", "reward"),
    ("response_intervals", "response"),
    ("sla_violation", "sla"),
    ("accuracy", "accuracy"),
    ("energy_kwh", "energy"),
    ("sched_s", "sched_s"),
    ("jain", "jain"),
    ("wait_intervals", "wait"),
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(__file__).resolve().parent.parent / "results" / "tuli2021"
    doc = reproduce(out, quick=args.quick)
    ours = {
        n: {k: row[k] for k in (*(k for k, _ in KEYS), "layer_fraction")}
        for n, row in doc["ours"].items()
    }
    rel = {}
    for key, pkey in KEYS:
        sp, gi = ours["splitplace"][key], ours["gillis"][key]
        if sp is None or gi is None or gi[0] == 0:
            continue
        rel[key] = {
            "ours": sp[0] / gi[0],
            "paper": PAPER["splitplace"][pkey] / PAPER["gillis"][pkey],
        }
        print(
            f"SplitPlace / Gillis {key:20s} ours {rel[key]['ours']:6.3f}   "
            f"paper {rel[key]['paper']:6.3f}"
        )
    for name, row in ours.items():
        print(
            f"{name:11s} eq.8 {row['reward_eq8'][0]:6.2f} O^MAB {row['reward_omab'][0]:6.2f} "
            f"(paper {PAPER[name]['reward']:6.2f})  layer {row['layer_fraction'][0]:4.2f}"
            f"  resp {row['response_intervals'][0]:5.2f} ({PAPER[name]['response']:5.2f})"
            f"  SLA {row['sla_violation'][0]:4.2f} ({PAPER[name]['sla']:4.2f})"
            f"  acc {row['accuracy'][0]:6.2f} ({PAPER[name]['accuracy']:6.2f})"
        )
    save(
        "cluster_table1",
        {
            "protocol": doc["protocol"],
            "fig4": doc["fig4"],
            "ours_mean_ci95": ours,
            "paper": PAPER,
            "splitplace_over_gillis": rel,
            "mab_state": doc["mab_state"],
        },
    )


if __name__ == "__main__":
    main()
