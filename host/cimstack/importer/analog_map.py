"""An imported macro layer on the analog macro (``cimstack import --macro acim``).

The acim macro converts each channel's dot product with its ADC and in-ADC batch norm
(docs/macros.md, "Analog CIM macro"): ``code = round_half_up(h*(G*dot/FS + 1) + beta)``,
``h = 2^(adc_bits-1)``, ``FS`` the swing normalization. The import wants the codes of
the activation ``Quant`` (scale ``s_o``), ``round(y / s_o)`` with ``y = dot*m + c`` (the
macro's unsigned-input dot product, the input's offset already in ``m`` and ``c``), so

    G = |m| * FS / (s_o * h),      beta = c / s_o - h

rounded to the ABN's fixed-point formats, and a channel with ``m < 0`` gets its weights
negated (the gain is unsigned). The hidden layers' requantizers are the identity on the
ADC codes; the logits' ADC codes centre on ``h`` (``beta = c/s_o``, the requantizer
subtracts ``h``), with ``s_o`` chosen so that the largest |logit| takes ``h - 1``
codes. Unlike the digital macro this is not the QONNX model's integer function: the
gain's rounding and the ADC's clipping (and any noise, ``sigma``) change codes, which
is what a user studies on this macro; reference and emulated overlay still agree bit
for bit. A layer that does not map onto the channel-wise array split with every input
channel inside one segment is refused (:func:`cimstack.mapping.imagine.check_channel_split`).
"""

from __future__ import annotations

import numpy as np

from ..bundle import INT32, MacroLayer, Requant
from ..config import AcimLayerParams, AcimSpec
from ..errors import ConfigError
from ..mapping.imagine import check_channel_split, layer_split


def map_analog(layer: MacroLayer, m: np.ndarray, c: np.ndarray, s_o: float | None,
               codes_hi: int | None, spec: AcimSpec, key: int) -> float:
    """Turn ``layer`` (a dcim-shaped macro layer with real output ``dot*m + c``) into an
    acim layer: ABN gains and offsets, identity requantizer; ``codes_hi`` is the top
    code of its activation Quant (None for the logits, whose scale is chosen and
    returned). Returns the output scale."""
    a = spec.adc_bits
    h = 1 << (a - 1)
    where = f"layer {layer.name}"
    if layer.k > spec.rows:
        raise ConfigError(f"{where}: K = {layer.k} inputs exceed the acim array's {spec.rows} "
                          "rows (the analog macro is not split over rows); import it with "
                          "--macro dcim or reduce the layer's inputs")
    check_channel_split(spec, layer_split(spec, layer))
    if codes_hi is not None and codes_hi > (1 << a) - 1:
        raise ConfigError(f"{where}: its activation has {int(codes_hi).bit_length()} bits but "
                          f"the ADC gives {a}-bit codes; set --set adc_bits="
                          f"{int(codes_hi).bit_length()} or quantize the activation to {a} bits")
    fs = spec.norm_rows(layer.k) * ((1 << layer.x_bits) - 1) * (1 << (layer.w_bits - 1))
    w_abs = np.abs(layer.matrix().astype(np.int64)).sum(axis=0) * ((1 << layer.x_bits) - 1)
    logits = s_o is None
    if logits:
        peak = float(np.max(w_abs * np.abs(m) + np.abs(c)))
        s_o = peak / (h - 1) if peak > 0 else 1.0
    flip = m < 0
    layer.weight[flip] = -layer.weight[flip]
    gain = np.abs(m) * fs / (s_o * h)
    beta = c / s_o - (0 if logits else h)
    g = np.round(gain * 2.0**spec.gain_frac_bits).astype(np.int64)
    o = np.round(beta * 2.0**spec.offset_frac_bits).astype(np.int64)
    for name, arr, (lo, hi), frac in (("gain", g, spec.gain_range, spec.gain_frac_bits),
                                      ("offset", o, spec.offset_range, spec.offset_frac_bits)):
        if arr.min() < lo or arr.max() > hi:
            bad = float((arr.max() if arr.max() > hi else arr.min()) / 2.0**frac)
            raise ConfigError(
                f"{where}: its ABN {name} would be {bad:g}, outside the acim format "
                f"[{lo / 2.0**frac:g}, {hi / 2.0**frac:g}]; change the macro "
                f"(--set gain_bits=... / offset_bits=..., adc_bits) or import with --macro dcim")
    layer.macro = "acim"
    layer.analog = AcimLayerParams(gain=g, offset=o, layer=key)
    n = layer.channels
    if logits:
        layer.requant = Requant(np.ones(n, np.int64), np.full(n, -h, np.int64), 0, *INT32)
    else:
        layer.requant = Requant(np.ones(n, np.int64), np.zeros(n, np.int64), 0, 0,
                                int(codes_hi))
    return s_o
