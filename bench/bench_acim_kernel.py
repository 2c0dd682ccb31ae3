"""The acim kernel's C simulation: microseconds per input vector of one compute call,
for a full 1152 x 128 slice and two small ones, charge and per-bit mode (noise on),
best of interleaved rounds (the cores are shared). ``--hls DIR`` times the kernel
sources of another tree beside this one's, e.g. the last commit's::

    mkdir OLD && git archive HEAD hls | tar -x -C OLD
    python bench/bench_acim_kernel.py --hls OLD/hls   # bench/results/acim_kernel.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cimstack.config import AcimSpec
from cimstack.emu.csim import CsimKernel
from cimstack.hw import streams
from cimstack.ref.acim import kernel_registers

from common import best_of, record

SHAPES = ((1152, 128), (192, 10), (72, 16))      # (K, n)


def compute_call(kernel: CsimKernel, k: int, n: int, per_bit: bool, vectors: int):
    """Load a random slice into ``kernel``; return a function running one compute call
    of ``vectors`` vectors (and checking its word counts)."""
    rng = np.random.default_rng(0)
    spec = AcimSpec(swing="fixed", adc_per_input_bit=per_bit, sigma=1.0, seed=1)
    regs = {**kernel_registers(spec, k, n, 8, 8), "shift": 0, "out_lo": -(2**31),
            "out_hi": 2**31 - 1}

    def run(mode: int, words: np.ndarray, **extra):
        last = np.zeros(len(words), bool)
        last[-1] = True
        consumed, out, _ = kernel.run({**regs, "mode": mode, **extra}, words, last)
        assert consumed == len(words)
        return out

    run(0, streams.pack_weights(rng.integers(-128, 128, (k, n))))
    run(1, streams.pack_requant(np.ones(n, np.int64), np.zeros(n, np.int64)))
    run(3, streams.pack_abn(np.full(n, 4 * 256), np.zeros(n, np.int64)))
    x = streams.pack_inputs(rng.integers(0, 256, (vectors, k)))
    return lambda: run(2, x, n_vec=vectors)


def main(other: Path | None = None, rounds: int = 5) -> dict:
    kernels = {"this": CsimKernel("acim")}
    if other is not None:
        kernels["other"] = CsimKernel("acim", hls_dir=other)
    # "other": the --hls tree (its path is not recorded: no machine paths in results)
    figs: dict = {"other": "the --hls tree" if other else None}
    for k, n in SHAPES:
        for per_bit in (False, True):
            vectors = 8 if per_bit and k == 1152 else 64
            calls = {name: compute_call(kern, k, n, per_bit, vectors)
                     for name, kern in kernels.items()}
            best = {name: float("inf") for name in calls}
            for _ in range(rounds):
                for name, call in calls.items():
                    best[name] = min(best[name], best_of(call, 2))
            key = f"k{k}_n{n}_{'per_bit' if per_bit else 'charge'}"
            for name, seconds in best.items():
                figs[f"{key}_{name}_us_per_vector"] = seconds / vectors * 1e6
    record("acim_kernel", figs)
    return figs


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hls", type=Path, help="another tree's hls/ folder to time beside")
    main(parser.parse_args().hls)
