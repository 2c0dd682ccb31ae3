"""FlexSpIM's network at scale: the dataflow policies on M shared macros with a DRAM
tier, across input sparsity (a model study; nothing is timed).

The 6-conv + 3-FC network (:mod:`cimstack.models.flexspim`, seeded random weights) runs
through the integer reference on seeded random events (``--samples`` x ``--steps``
frames per sparsity); :func:`cimstack.cost.snn.policy_study` maps it under every policy
on every number of macros. Prints one markdown table (those in docs/cost.md) and the
spike rates, and writes every row, with the per-layer plans, to
bench/results/flexspim_dataflow.json (``_d4`` etc. with ``--downsample``).

    python bench/bench_flexspim_dataflow.py                  # 2 x 128 x 128
    python bench/bench_flexspim_dataflow.py --downsample 4   # 2 x 32 x 32
"""

from __future__ import annotations

import argparse

from cimstack.cost.snn import policy_study
from cimstack.fileio import write_json_atomic
from cimstack.models.flexspim import flexspim_net

from common import RESULTS, machine

SPARSITIES = (0.85, 0.9, 0.95, 0.99)
MACROS = (2, 4, 8, 16, 18)


def table(rows: list[dict]) -> str:
    """One line per (sparsity, macros): per policy the DRAM traffic / ws-only's and the
    energy change against ws-only, and the resident (stationary) bits against ws-only."""
    from cimstack.mapping.flexspim import POLICIES
    by = {(r["sparsity"], r["macros"], r["policy"]): r for r in rows}
    keys = sorted({(r["sparsity"], r["macros"]) for r in rows})
    head = ("| input sparsity | macros | ws-only DRAM Mbit, uJ / sample | "
            + " | ".join(f"{p}: DRAM, energy vs ws-only" for p in POLICIES if p != "ws")
            + " | resident bits vs ws-only: " + ", ".join(p for p in POLICIES if p != "ws")
            + " |\n|" + "---|" * (4 + len(POLICIES) - 1))
    lines = []
    for s, m in keys:
        ws = by[s, m, "ws"]
        cells = [f"x{by[s, m, p]['dram_vs_ws']:.2f}, {by[s, m, p]['energy_vs_ws']:+.0%}"
                 for p in POLICIES if p != "ws"]
        gains = ", ".join(f"{by[s, m, p]['resident_vs_ws']:+.0%}" for p in POLICIES
                          if p != "ws")
        lines.append(f"| {s:.0%} | {m} | {ws['dram_bits_per_sample'] * 1e-6:,.1f}, "
                     f"{ws['energy_pj_per_sample'] * 1e-6:,.0f} | " + " | ".join(cells)
                     + f" | {gains} |")
    return "\n".join([head, *lines])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--downsample", type=int, default=1)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    net = flexspim_net(args.downsample, seed=args.seed)
    rows = policy_study(net, SPARSITIES, MACROS, args.samples, args.steps, args.seed)
    print(table(rows))
    rates = {f"{r['sparsity']:.0%}": {k: round(v, 3) for k, v in r["rates"].items()}
             for r in rows if r["policy"] == "ws" and r["macros"] == MACROS[0]}
    print("spike rates per neuron and timestep:", rates)
    name = "flexspim_dataflow" + (f"_d{args.downsample}" if args.downsample > 1 else "")
    path = write_json_atomic(RESULTS / f"{name}.json", {
        "machine": machine(), "network": net.name, "samples": args.samples,
        "steps": args.steps, "seed": args.seed, "rows": rows})
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
