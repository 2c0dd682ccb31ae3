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
``sum_k |w[n,k]| * (2^x_bits - 1)``; :meth:`~cimstack.bundle.Requant.check_headroom`
enforces the same rule per channel when a bundle is loaded). The residual differences
to torch are its float32 rounding (and ties: torch rounds half to even, the requantizer
half up); they move an output code by one step only where torch's value lies within
its float32 error (about 1e-5 of a step for a 3x3 conv) of a rounding tie, which
:func:`compare_layer_codes` checks layer by layer.

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
from ..ref.codes import LayerCheck, check_codes, float32_bound
from ..ref.requant import choose_shift, logit_scale, make_requant
from .model import QuantDigitsNet, predict

INT32_LO, INT32_HI = -(2**31), 2**31 - 1


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


def layer_requant(w_int: np.ndarray, x_bits: int, s_x: float, s_w: np.ndarray,
                  bias: np.ndarray, s_o: float | None = None,
                  out_bits: int | None = None) -> tuple[Requant, float]:
    """``(requantizer, s_o)`` of a macro layer with integer weights ``w_int`` reading
    ``x_bits``-bit codes of scale ``s_x`` (module docstring): a hidden layer (``s_o``
    and ``out_bits`` given) clamps to ``[0, 2^out_bits - 1]``; the logits (``s_o``
    None) get :func:`~cimstack.ref.requant.logit_scale` and the int32 range."""
    w2 = np.abs(w_int.reshape(w_int.shape[0], -1).astype(np.int64))
    acc_bound = w2.sum(axis=1) * ((1 << x_bits) - 1)       # per channel
    if s_o is None:
        s_o = logit_scale(acc_bound * s_x * s_w, bias)
        lo, hi = INT32_LO, INT32_HI
    else:
        lo, hi = 0, (1 << out_bits) - 1
    return make_requant(s_x * s_w / s_o, bias / s_o, int(acc_bound.max()), lo, hi), s_o


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
        if i < 2:
            rq, _ = layer_requant(w_int, x_bits, x_scales[i], s_w, bias, act_scales[i],
                                  cfg.a_bits[i])
        else:
            rq, output_scale = layer_requant(w_int, x_bits, x_scales[i], s_w, bias)
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
    ref = run_network(bundle, quantize_input(bundle, images))
    ref_pred = ref.predictions
    torch_pred = predict(model, images)
    out = {"agreement": float(np.mean(ref_pred == torch_pred)), "ref_pred": ref_pred,
           "torch_pred": torch_pred, "logits": ref.logits, "stats": ref.stats}
    if labels is not None:
        out["ref_acc"] = float(np.mean(ref_pred == labels))
        out["torch_acc"] = float(np.mean(torch_pred == labels))
    return out


def _codes(x: torch.Tensor, scale: float, what: str) -> np.ndarray:
    """Integer codes of a dequantized tensor (``x / scale`` must be integers)."""
    v = x.double().numpy() / scale
    codes = np.round(v)
    if codes.size and np.abs(v - codes).max() > 1e-3:
        raise ValueError(f"{what}: values are not multiples of the scale {scale}")
    return codes.astype(np.int64)


@torch.no_grad()
def compare_layer_codes(bundle: Bundle, model: QuantDigitsNet,
                        images: np.ndarray) -> list[LayerCheck]:
    """Compare the bundle with the Brevitas model in the integer domain, layer by layer.

    The model runs once on ``images``; each macro layer of the bundle then runs on the
    very input codes torch's layer received (so one flipped code cannot spread), and its
    output codes are checked against torch's values before rounding. The error bound of
    an output, in output steps, is ``gamma(K+4) * (sum_k |x_k*w_k| + |b|) / s_o`` (the
    float32 dot product of length ``K`` with the input, weight, bias and scale
    roundings; ``gamma(n) = n*u/(1-n*u)``, ``u = 2^-24``) plus the requantizer's
    fixed-point error ``(sum_k |x_k*w_k| + 1) / 2^(shift+1)``. The first entry checks
    the input codes (``quantize_input`` against the model's input quantizer, exact).
    """
    from ..ref.lowering import lower_conv
    from ..ref.network import quantize_input, reference_engine
    model.eval()
    seen = {}                                    # module -> (its input, its output)
    hooks = [module.register_forward_hook(
        lambda mod, inp, out: seen.__setitem__(mod, (inp[0], out)))
        for module in (*model.macro_layers, *model.acts)]
    try:
        model(torch.from_numpy(np.asarray(images, np.float32)))
    finally:
        for hook in hooks:
            hook.remove()
    in_scale = float(model.inp.scale)
    act_scales = [float(a.act_quant.scale().double()) for a in model.acts]
    x_scales = [in_scale, *act_scales]

    x0 = _codes(seen[model.macro_layers[0]][0], in_scale, "input")
    ref_in = quantize_input(bundle, images).astype(np.int64)
    zero = np.zeros(ref_in.shape)
    checks = [check_codes("input", ref_in, x0.astype(np.float64), zero,
                           0, (1 << bundle.input.bits) - 1)]
    for i, (layer, module) in enumerate(zip(bundle.macro_layers, model.macro_layers)):
        x_in, y = seen[module]
        x_codes = _codes(x_in, x_scales[i], f"{layer.name} input")
        x_mat = lower_conv(x_codes, layer) if layer.op == "conv2d" else x_codes
        ref = reference_engine(layer, x_mat, bundle)                      # [V, N]
        if layer.op == "conv2d":
            y = y.permute(0, 2, 3, 1).reshape(-1, y.shape[1])            # lower_conv order
        if i < len(act_scales):
            act = model.acts[i]
            torch_value = (torch.relu(y) / act.act_quant.scale()).double().numpy()
            s_o = act_scales[i]
            a = seen[act][1]                                            # Brevitas' output
            a = a.permute(0, 2, 3, 1).reshape(y.shape) if a.dim() == 4 else a
            codes = np.clip(np.round(torch_value), layer.requant.lo, layer.requant.hi)
            if not np.array_equal(_codes(a, s_o, f"{layer.name} activation"), codes):
                raise ValueError(f"{layer.name}: Brevitas' activation codes are not "
                                 "clip(round(relu(y) / scale)); this check needs updating")
        else:
            s_o = float(bundle.meta["output_scale"])
            torch_value = y.double().numpy() / s_o
        _, s_w = integer_weight(module, layer.w_bits)
        abs_acc = x_mat.astype(np.int64) @ np.abs(layer.matrix().astype(np.int64))
        magnitude = (abs_acc * (x_scales[i] * s_w)
                     + np.abs(module.bias.detach().double().numpy())) / s_o
        bound = (float32_bound(layer.k + 4) * magnitude
                 + (abs_acc + 1) / 2.0 ** (layer.requant.shift + 1))
        checks.append(check_codes(layer.name, ref, torch_value, bound,
                                   layer.requant.lo, layer.requant.hi))
    return checks


__all__ = ["export_bundle", "layer_requant", "make_requant", "choose_shift", "integer_weight",
           "compare_with_reference", "compare_layer_codes", "LayerCheck", "save_bundle"]
