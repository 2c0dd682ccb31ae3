"""Export of the trained spiking CNN to the integer event-core network.

Weights: Brevitas' integer representation ``w_int = w / s`` with ``s = 2^-f`` the
per-tensor power-of-two scale; threshold ``theta = 1 / s = 2^f`` (the float threshold
1.0 in integer units), reset by subtraction, no leak. :func:`narrow_membranes`
re-expresses a network for fewer membrane bits: when ``theta`` does not fit
``v_bits`` it divides weights and threshold by the same power of two (weights rounded
half away from zero, clamped to their width), the membrane-width sweep's only knob.
"""

from __future__ import annotations

import copy

import numpy as np

from ..config import SnnSpec
from ..errors import ConfigError
from ..ref.snn import SnnLayer, SnnNet, v_range, w_range


def _int_weight(layer) -> tuple[np.ndarray, int]:
    qw = layer.quant_weight()
    scale = float(qw.scale.detach().reshape(-1)[0])
    f = -np.log2(scale)
    if abs(f - round(f)) > 1e-6:
        raise ConfigError(f"weight scale {scale} of {layer} is not a power of two; the "
                          "event core's threshold must be an integer (use a fixed-point quantizer)")
    w = np.rint(qw.int().detach().numpy()).astype(np.int32)
    return w, int(round(f))


def export_snn(model, v_bits: int = 16, name: str = "snn", meta: dict | None = None,
               dataflow: str = "auto", spec: SnnSpec | None = None) -> SnnNet:
    """The integer :class:`SnnNet` of a trained :class:`~cimstack.quant.snn.SpikingCNN`."""
    sh = model.shapes
    wb = model.w_bits
    layers = []
    specs = [("conv1", model.conv1, "conv", tuple(model.input_shape), sh[0]),
             ("pool1", None, "pool", sh[0], sh[1]),
             ("conv2", model.conv2, "conv", sh[1], sh[2]),
             ("pool2", None, "pool", sh[2], sh[3]),
             ("fc", model.fc, "fc", sh[3], sh[4])]
    for lname, mod, op, ins, outs in specs:
        if op == "pool":
            layers.append(SnnLayer(lname, "pool", ins, outs, kernel=2))
            continue
        w, f = _int_weight(mod)
        theta = 1 << f
        conv = dict(padding=model.padding, stride=model.stride) if op == "conv" else {}
        layers.append(SnnLayer(lname, op, tuple(ins), tuple(outs), w.astype(np.int32),
                               theta=theta, w_bits=wb, v_bits=16, dataflow=dataflow, **conv))
    net = SnnNet(name, tuple(model.input_shape), layers, spec or SnnSpec(w_bits=wb),
                 dict(meta or {}))
    return narrow_membranes(net, v_bits) if v_bits != 16 else _checked(net)


def _checked(net: SnnNet) -> SnnNet:
    net.validate()
    return net


def narrow_membranes(net: SnnNet, v_bits: int) -> SnnNet:
    """A copy of ``net`` with ``v_bits``-bit membranes (weights and threshold scaled
    down by powers of two where the threshold does not fit)."""
    if not 2 <= v_bits <= 16:
        raise ConfigError(f"v_bits = {v_bits}: the sweep supports 2..16 bits")
    out = copy.deepcopy(net)
    for layer in out.layers:
        if not layer.spiking:
            continue
        _, vhi = v_range(v_bits)

        def scaled(x: int, shift: int) -> int:        # round half up
            return (x + ((1 << shift) >> 1)) >> shift

        shift = 0
        while scaled(layer.theta, shift) > vhi:
            shift += 1
        if shift:
            w = layer.weight.astype(np.int64)
            w = np.sign(w) * ((np.abs(w) + (1 << (shift - 1))) >> shift)
            lo, hi = w_range(layer.w_bits)
            if layer.w_bits == 1:
                raise ConfigError(f"layer {layer.name}: binary weights cannot be scaled down")
            layer.weight = np.clip(w, lo, hi).astype(np.int32)
            layer.theta = max(1, scaled(layer.theta, shift))
        layer.v_init = int(np.clip(layer.v_init >> shift, *v_range(v_bits)))   # same scale
        layer.v_bits = v_bits
    out.meta = {**out.meta, "v_bits": v_bits}
    out.validate()
    return out
