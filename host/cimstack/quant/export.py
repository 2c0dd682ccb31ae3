"""Brevitas digits model -> integer :class:`~cimstack.bundle.Bundle`.

Per macro layer, with input scale ``s_x`` (the input quantizer's for the first layer,
the previous ``QuantReLU``'s otherwise), per-channel weight scale ``s_w[n]``, float
bias ``b[n]`` and output scale ``s_o``, the torch model computes

    y_int = clamp(round(acc * s_x*s_w[n]/s_o + b[n]/s_o), lo, hi)

with ``acc`` the exact integer dot product. The requantizer
``clamp((acc*M_n + B_n + 2^(s-1)) >> s, lo, hi)`` (docs/macros.md) takes
``M_n = round(s_x*s_w[n]/s_o * 2^s)`` and ``B_n = round(b[n]/s_o * 2^s)`` with ``s`` the
largest shift (<= 62) that keeps ``max|M_n| < 2^31``, ``|B_n| < 2^62`` and the int64
sum ``max|acc|*max|M| + max|B| + 2^(s-1) < 2^63`` (``max|acc|`` bounded per channel by
``sum_k |w[n,k]| * (2^x_bits - 1)``). The residual differences to torch are float32
rounding and ties (torch rounds half to even, the requantizer half up); they flip an
output code only when the exact value sits within ~1e-6 of a rounding boundary.

Hidden layers: ``lo = 0`` (the ReLU), ``hi = 2^a_bits - 1``; max pooling stays after
the requantized layer as an integer pool (it commutes with the monotone requantizer).
The last linear layer has no activation quantizer: its output scale ``s_o`` is chosen
so that the largest possible |logit| is about 2^24 (well inside int32), ``lo/hi`` are
the int32 range, and ``s_o`` is recorded in ``meta["output_scale"]``
(``logits_float ~= logits_int * output_scale``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..bundle import (Bundle, FlattenLayer, InputSpec, MacroLayer, PoolLayer, Requant,
                      save_bundle)
from ..config import DcimSpec
from .model import QuantDigitsNet

INT32_LO, INT32_HI = -(2**31), 2**31 - 1
LOGIT_BITS = 24


def choose_shift(real_m: np.ndarray, real_b: np.ndarray, acc_max: int) -> int:
    """Largest shift ``s`` in [0, 62] for which the integer requantizer is safe."""
    m_abs = float(np.max(np.abs(real_m))) if real_m.size else 0.0
    b_abs = float(np.max(np.abs(real_b))) if real_b.size else 0.0
    for s in range(62, -1, -1):
        m_int = round(m_abs * 2.0**s)
        b_int = round(b_abs * 2.0**s)
        if m_int >= 2**31 or b_int >= 2**62:
            continue
        if acc_max * m_int + b_int + (1 << max(s - 1, 0)) < 2**63:
            return s
    raise ValueError(f"no shift makes the requantizer safe (max|M| {m_abs}, max|B| {b_abs})")


def make_requant(real_m: np.ndarray, real_b: np.ndarray, acc_max: int, lo: int,
                 hi: int) -> Requant:
    """Integer requantizer approximating ``acc*real_m + real_b`` (see module doc)."""
    real_m = np.asarray(real_m, np.float64)
    real_b = np.asarray(real_b, np.float64)
    s = choose_shift(real_m, real_b, acc_max)
    mult = np.array([round(v * 2.0**s) for v in real_m], dtype=np.int64)
    bias = np.array([round(v * 2.0**s) for v in real_b], dtype=np.int64)
    return Requant(multiplier=mult, bias=bias, shift=int(s), lo=int(lo), hi=int(hi))


@torch.no_grad()
def integer_weight(layer, w_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(int8 weight in torch layout, float64 per-channel scale [N]) from Brevitas."""
    qw = layer.quant_weight()
    w_int = torch.round(qw.value / qw.scale).to(torch.int64).numpy()
    scale = qw.scale.detach().double().reshape(-1).numpy()
    if scale.size == 1:
        scale = np.full(w_int.shape[0], scale[0])
    if w_bits == 1:
        if not np.isin(w_int, (-1, 0, 1)).all():
            raise ValueError("binary layer exported values outside {-1, 0, +1}")
    return w_int.astype(np.int8), scale


@torch.no_grad()
def export_bundle(model: QuantDigitsNet, name: str = "digits", dcim: DcimSpec | None = None,
                  rows_on: int | None = None, meta: dict | None = None) -> Bundle:
    """Build (and validate) the integer bundle of a trained :class:`QuantDigitsNet`."""
    model.eval()
    cfg = model.cfg
    if dcim is None:
        dcim = DcimSpec(rows_on=rows_on) if rows_on else DcimSpec()
    in_scale = float(model.inp.scale)
    act_scales = [float(a.act_quant.scale().detach().double()) for a in model.acts]
    x_scales = [in_scale, *act_scales]
    c1, c2 = model.conv1.out_channels, model.conv2.out_channels
    shapes = {  # (in_shape, out_shape) of each layer, C,H,W
        "conv1": ((1, 8, 8), (c1, 8, 8)), "pool1": ((c1, 8, 8), (c1, 4, 4)),
        "conv2": ((c1, 4, 4), (c2, 4, 4)), "pool2": ((c2, 4, 4), (c2, 2, 2)),
        "flatten": ((c2, 2, 2), (c2 * 4,)), "fc": ((c2 * 4,), (model.fc.out_features,)),
    }
    macro = {}
    output_scale = None
    for i, (lname, layer) in enumerate(zip(("conv1", "conv2", "fc"), model.macro_layers)):
        w_bits, x_bits = cfg.w_bits[i], cfg.x_bits[i]
        w_int, s_w = integer_weight(layer, w_bits)
        bias = layer.bias.detach().double().numpy()
        s_x = x_scales[i]
        w2 = np.abs(w_int.reshape(w_int.shape[0], -1).astype(np.int64))
        acc_bound = w2.sum(axis=1) * ((1 << x_bits) - 1)       # per channel
        acc_max = int(acc_bound.max())
        if i < 2:
            s_o = act_scales[i]
            lo, hi = 0, (1 << cfg.a_bits[i]) - 1
        else:
            bound = float(np.max(acc_bound * s_x * s_w + np.abs(bias)))
            s_o = bound / 2.0**LOGIT_BITS if bound > 0 else 1.0
            output_scale = s_o
            lo, hi = INT32_LO, INT32_HI
        rq = make_requant(s_x * s_w / s_o, bias / s_o, acc_max, lo, hi)
        op = "conv2d" if w_int.ndim == 4 else "linear"
        macro[lname] = MacroLayer(
            name=lname, op=op, weight=w_int, w_bits=w_bits, x_bits=x_bits, requant=rq,
            in_shape=shapes[lname][0], out_shape=shapes[lname][1],
            stride=1, padding=1 if op == "conv2d" else 0, macro="dcim")
    layers = [macro["conv1"], PoolLayer("pool1", *shapes["pool1"], kernel=2, stride=2),
              macro["conv2"], PoolLayer("pool2", *shapes["pool2"], kernel=2, stride=2),
              FlattenLayer("flatten", *shapes["flatten"]), macro["fc"]]
    full_meta = dict(meta or {})
    full_meta.update(output_scale=output_scale, input_scale=in_scale, act_scales=act_scales,
                     bits=cfg.to_dict())
    bundle = Bundle(name=name, input=InputSpec(shape=(1, 8, 8), bits=cfg.in_bits,
                                               scale=in_scale),
                    layers=layers, dcim=dcim, meta=_jsonable(full_meta))
    bundle.validate()
    return bundle


def _jsonable(obj):
    """Plain JSON types (numpy scalars/arrays, tuples -> lists)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


def compare_with_reference(bundle: Bundle, model: torch.nn.Module, images: np.ndarray,
                           labels: np.ndarray | None = None) -> dict:
    """Run the integer reference and the torch model on ``images``; agreement figures."""
    from ..ref.network import quantize_input, run_network
    from .train import predict
    ref = run_network(bundle, quantize_input(bundle, images))
    ref_pred = ref.predictions
    torch_pred = predict(model, images)
    out = {"agreement": float(np.mean(ref_pred == torch_pred)), "ref_pred": ref_pred,
           "torch_pred": torch_pred, "logits": ref.logits, "stats": ref.stats}
    if labels is not None:
        out["ref_acc"] = float(np.mean(ref_pred == labels))
        out["torch_acc"] = float(np.mean(torch_pred == labels))
    return out


__all__ = ["export_bundle", "make_requant", "choose_shift", "integer_weight",
           "compare_with_reference", "save_bundle"]
