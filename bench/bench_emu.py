"""Emulated overlay throughput on the digits test set against the reference backend,
in one run, with the per-stage breakdown and the cold / warm C-sim build time.

All test images go through each layer in one batch: a layer costs three DMA
transactions (weights, requantizer, compute), so register traffic is per layer and
batch, not per image.

    python bench/bench_emu.py                 # writes bench/results/emu.json
"""

from __future__ import annotations

import os
import tempfile

from cimstack.backends import open_backend
from cimstack.emu.csim import build_library
from cimstack.hw.kernel import StageTimes
from cimstack.quant.train import train_digits
from cimstack.ref.network import quantize_input, run_network

from common import best_of, record


def main() -> None:
    # cold build: an empty cache folder; warm: the same call again
    with tempfile.TemporaryDirectory() as cache:
        os.environ["CIMSTACK_CACHE"] = cache
        cold = build_library("dcim")
        warm = build_library("dcim")
        del os.environ["CIMSTACK_CACHE"]
    assert cold.rebuilt and not warm.rebuilt

    result = train_digits(8, 8, block_sparsity=0.5, epochs=4, progress=False)
    bundle = result.export()
    x_int = quantize_input(bundle, result.data.x_test)
    n = len(x_int)

    t_ref = best_of(lambda: run_network(bundle, x_int))
    backend = open_backend("emu")
    runner = backend.overlay.runner()
    run_network(bundle, x_int, engine=runner.engine)            # warm-up
    runner.transact.times = StageTimes()                        # count the timed runs only
    repeat = 5
    t_emu = best_of(lambda: run_network(bundle, x_int, engine=runner.engine), repeat=repeat)
    stages = runner.times.to_dict()
    runs = repeat + 1                                            # best_of warms up once
    per_run = {k: v / runs for k, v in stages["seconds"].items()}

    figs = {
        "workload": f"digits CNN W8A8, 50% block sparsity, {n} test images, one batch",
        "reference_s": t_ref, "reference_images_per_s": n / t_ref,
        "emu_s": t_emu, "emu_images_per_s": n / t_emu,
        "emu_over_reference": t_emu / t_ref,
        "emu_stage_seconds_per_run": per_run,
        "dma_transactions_per_run": stages["calls"] / runs,
        "vectors_per_run": stages["items"] / runs,
        "csim_build_cold_s": cold.seconds, "csim_build_warm_s": warm.seconds,
    }
    record("emu", figs)


if __name__ == "__main__":
    main()
