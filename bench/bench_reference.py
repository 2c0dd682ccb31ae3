"""Reference backend throughput on the digits test set, in one run, against
(a) the same network's float forward in torch and (b) the bound set by the integer
matrix products the reference performs (the lowered K x N products alone, with the
same BLAS call, no lowering, requantization or pooling).

    python bench/bench_reference.py            # writes bench/results/reference.json
"""

from __future__ import annotations

import numpy as np
import torch

from cimstack.quant.train import train_digits
from cimstack.ref.dcim import macro_matmul
from cimstack.ref.lowering import lower_conv
from cimstack.ref.network import quantize_input, reference_engine, run_layer, run_network

from common import best_of, record


def main() -> None:
    torch.set_num_threads(2)
    result = train_digits(8, 8, epochs=4, progress=False)
    bundle = result.export()
    x = result.data.x_test
    x_int = quantize_input(bundle, x)
    n = len(x)

    t_ref = best_of(lambda: run_network(bundle, x_int))

    # the products alone: lower every macro layer's real input once, outside the timer
    mats, acts = [], x_int.astype(np.int64)
    for layer in bundle.layers:
        if hasattr(layer, "requant"):
            xm = lower_conv(acts, layer) if layer.op == "conv2d" else acts.reshape(n, -1)
            mats.append((xm, layer))
        acts = run_layer(layer, [acts], bundle, reference_engine)
    macs = sum(xm.shape[0] * layer.k * layer.channels for xm, layer in mats)
    t_bound = best_of(lambda: [macro_matmul(xm, l.matrix(), l.w_bits, l.x_bits, bundle.dcim)
                               for xm, l in mats])

    model = result.float_model.eval()
    xt = torch.from_numpy(x)
    with torch.no_grad():
        t_torch = best_of(lambda: model(xt))

    figs = {
        "workload": f"digits CNN W8A8, {n} test images, batch = all",
        "reference_s": t_ref, "reference_images_per_s": n / t_ref,
        "matmul_bound_s": t_bound, "matmul_bound_images_per_s": n / t_bound,
        "torch_float_s": t_torch, "torch_float_images_per_s": n / t_torch,
        "macs_per_image": macs // n,
        "reference_gmac_per_s": macs / t_ref / 1e9,
        "reference_over_bound": t_ref / t_bound,
        "reference_over_torch": t_ref / t_torch,
    }
    record("reference", figs)


if __name__ == "__main__":
    main()
