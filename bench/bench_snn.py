"""Integer reference of the spiking event core against snnTorch, in one run.

Workload (ANCHORS.md): conv12-pool-conv32-pool-fc10 (5x5 kernels, no padding), T = 100
timesteps, batch 16, 2 x 34 x 34 input at 5 % input spike density. Both run the same
integer weights and thresholds; snnTorch uses ``Leaky(beta=1, reset subtract)`` with
threshold ``theta`` (it fires on ``mem > threshold``, the core on
``v >= theta``) and membranes starting at 0.5 (so ``v + 0.5 > theta`` is ``v >= theta``
and the subtract reset removes ``theta``): with float32-exact integer sums both give
the same spikes while no membrane leaves the 16-bit range. Records events per second of both, their ratio and
the output spike agreement, and the cost model's figures for the core. snnTorch is timed
with 1 and with 2 torch threads and the faster counts (on a loaded 2-core machine two
threads can be several times slower than one); the reference and snnTorch are timed
best of ``--repeat`` rounds that run each once (the same machine load for both). The emulated overlay (the spiking path through pynq, the DMA
driver and the C-simulated kernel) runs ``--overlay-samples`` samples of the batch (all
16 by default) in ``--overlay-rounds`` rounds interleaved with the reference on the
same samples; ``overlay_vs_reference`` is the ratio of their medians.

    python bench/bench_snn.py            # writes bench/results/snn.json
    python bench/bench_snn.py --bundle cimstack-out/snn_bundle   # a trained network
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from cimstack.mapping.snn import network_cost
from cimstack.ref.snn import SnnLayer, SnnNet, run_snn

from common import best_of, interleaved_medians, interleaved_times, record

ANCHOR_SNNTORCH_S = 0.214   # ANCHORS.md, same workload on a 2-core x86 machine


def bench_net(seed: int = 0) -> SnnNet:
    rng = np.random.default_rng(seed)

    def w(shape):       # 5-bit weights keep every membrane inside 16 bits here
        return rng.integers(-16, 16, shape).astype(np.int32)

    kw = dict(w_bits=5, v_bits=16)
    layers = [
        SnnLayer("conv1", "conv", (2, 34, 34), (12, 30, 30), w((12, 2, 5, 5)), theta=50, **kw),
        SnnLayer("pool1", "pool", (12, 30, 30), (12, 15, 15)),
        SnnLayer("conv2", "conv", (12, 15, 15), (32, 11, 11), w((32, 12, 5, 5)), theta=190,
                 **kw),
        SnnLayer("pool2", "pool", (32, 11, 11), (32, 5, 5)),
        SnnLayer("fc", "fc", (32, 5, 5), (10,), w((10, 800)), theta=125, **kw),
    ]
    net = SnnNet("bench-snn", (2, 34, 34), layers)
    net.validate()
    return net


def snntorch_model(net: SnnNet):
    import snntorch as snn
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            c1, _, c2, _, fc = net.layers
            self.conv1 = nn.Conv2d(2, 12, 5, bias=False)
            self.conv2 = nn.Conv2d(12, 32, 5, bias=False)
            self.fc = nn.Linear(800, 10, bias=False)
            for mod, layer in ((self.conv1, c1), (self.conv2, c2), (self.fc, fc)):
                mod.weight.data = torch.from_numpy(layer.weight.astype(np.float32))
            self.lif1 = snn.Leaky(beta=1.0, threshold=float(c1.theta), reset_mechanism="subtract")
            self.lif2 = snn.Leaky(beta=1.0, threshold=float(c2.theta), reset_mechanism="subtract")
            self.lif3 = snn.Leaky(beta=1.0, threshold=float(fc.theta), reset_mechanism="subtract")
            self.pool = nn.MaxPool2d(2)

        def forward(self, x):            # x: [T, B, 2, 34, 34]
            count = 0
            for step in range(x.shape[0]):
                c1 = self.conv1(x[step])
                if step == 0:        # snnTorch replaces a state of the wrong shape by zeros
                    m1 = torch.full_like(c1, 0.5)
                s1, m1 = self.lif1(c1, m1)
                c2 = self.conv2(self.pool(s1))
                if step == 0:
                    m2 = torch.full_like(c2, 0.5)
                s2, m2 = self.lif2(c2, m2)
                c3 = self.fc(self.pool(s2).flatten(1))
                if step == 0:
                    m3 = torch.full_like(c3, 0.5)
                s3, m3 = self.lif3(c3, m3)
                count = count + s3
            return count

    return Net().eval()


def _threads() -> int:
    if not _numba():
        return 1
    import numba
    return numba.get_num_threads()


def _numba() -> bool:
    from cimstack.ref import snn_fast
    return snn_fast.AVAILABLE


def time_reference_and_snntorch(net: SnnNet, x: np.ndarray,
                                repeat: int) -> tuple[np.ndarray, float, dict]:
    """Output counts of the snnTorch model; the best times of the reference and of
    snnTorch with 1 and 2 torch threads, over ``repeat`` rounds that call each once (so
    that all see the same machine load)."""
    import torch
    model = snntorch_model(net)
    xt = torch.from_numpy(x.transpose(1, 0, 2, 3, 4).astype(np.float32))

    def snntorch(threads: int):
        def run():
            torch.set_num_threads(threads)
            return model(xt)
        return run

    with torch.no_grad():
        counts = model(xt).numpy().astype(np.int64)
        times = interleaved_times({"reference": lambda: run_snn(net, x), 1: snntorch(1),
                                   2: snntorch(2)}, repeat)
    best = {name: min(t) for name, t in times.items()}
    return counts, best.pop("reference"), best


def time_overlay(net: SnnNet, x: np.ndarray, ref_counts: np.ndarray, rounds: int) -> dict:
    """The emulated overlay on ``x`` against the reference, in ``rounds`` interleaved
    rounds (both see the same machine load): median seconds of each, the stage split of
    one more overlay run, and exactness."""
    from cimstack.backends import open_snn_runner
    runner, _ = open_snn_runner("emu")
    res = runner.run(net, x)       # warm-up: opens the device, builds the kernel, sizes buffers
    med = interleaved_medians({"reference": lambda: run_snn(net, x),
                               "overlay": lambda: runner.run(net, x)}, rounds)
    before = runner.times.to_dict()
    runner.run(net, x)
    after = runner.times.to_dict()
    stages = {k: after["seconds"][k] - before["seconds"][k] for k in after["seconds"]}
    return {"samples": len(x), "rounds": rounds, "seconds": med["overlay"],
            "seconds_per_sample": med["overlay"] / len(x),
            "reference_seconds": med["reference"],
            "vs_reference": med["overlay"] / med["reference"],
            "exact": bool((res.counts == ref_counts).all()), "stage_seconds": stages,
            "kernel_calls": after["calls"] - before["calls"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", default=None, help="SNN bundle with this architecture")
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--overlay-rounds", type=int, default=7,
                    help="interleaved rounds of the overlay and the reference (medians)")
    ap.add_argument("--overlay-samples", type=int, default=16,
                    help="samples run on the emulated overlay (0: skip it)")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    if args.bundle:
        from cimstack.snn_bundle import load_snn_bundle
        net = load_snn_bundle(args.bundle)
    else:
        net = bench_net()
    rng = np.random.default_rng(1)
    x = rng.random((16, 100, 2, 34, 34)) < 0.05
    res = run_snn(net, x)
    events = res.input_events
    t_numpy = best_of(lambda: run_snn(net, x, engine="numpy"), max(1, args.repeat // 4))
    exact = bool((run_snn(net, x, engine="numpy").counts == res.counts).all())

    counts, t_ref, torch_times = time_reference_and_snntorch(net, x, args.repeat)
    threads = min(torch_times, key=torch_times.get)
    t_torch = torch_times[threads]
    agree = float((counts == res.counts).mean())
    cost = network_cost(net, res, len(x))
    overlay = time_overlay(net, x[:args.overlay_samples], res.counts[:args.overlay_samples],
                           args.overlay_rounds) if args.overlay_samples else None
    figures = {
        "workload": "conv12-pool-conv32-pool-fc10, T=100, batch 16, 2x34x34, 5% input spikes",
        "load_average_1min_at_start": load,
        "network": net.name, "input_events": events, "synaptic_ops": res.sops,
        "reference_s": t_ref, "reference_events_per_s": events / t_ref,
        "reference_sops_per_s": res.sops / t_ref,
        "reference_engine": "events (numba)" if _numba() else "numpy",
        "reference_threads": _threads(),
        "reference_numpy_engine_s": t_numpy, "engines_agree": exact,
        "snntorch_s": t_torch, "snntorch_threads": threads,
        "snntorch_s_by_threads": {str(k): v for k, v in torch_times.items()},
        "snntorch_events_per_s": events / t_torch,
        "speedup_vs_snntorch": t_torch / t_ref,
        "output_count_agreement": agree,
        "snntorch_anchor_s": ANCHOR_SNNTORCH_S,
        "overlay": overlay,
        # the same samples, medians of the same interleaved rounds
        "overlay_vs_reference": overlay["vs_reference"] if overlay else None,
        "layer_events": [s.to_dict() for s in res.stats],
        "core_model": {k: v for k, v in cost.items() if k != "layers"},
        "core_layers": cost["layers"],
    }
    path = record("snn", figures)
    print(f"numpy engine {t_numpy:.3f} s; engines agree: {exact}")
    print(f"reference {t_ref:.3f} s ({events / t_ref:,.0f} events/s), snnTorch {t_torch:.3f} s "
          f"({events / t_torch:,.0f} events/s, {threads} thread(s)): {t_torch / t_ref:.2f}x; "
          f"output spike agreement {agree:.4f}; written {path}")
    if overlay:
        print(f"emulated overlay {overlay['seconds_per_sample']:.3f} s per sample: "
              f"{figures['overlay_vs_reference']:.0f}x the reference's time per sample")


if __name__ == "__main__":
    main()
