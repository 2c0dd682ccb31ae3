"""The walk of the QONNX import over a cleaned-up graph (:mod:`.qonnx_import`): what
every ONNX tensor holds (the float input, integer codes, or pending real values of an
integer a bundle node computes) and the bundle nodes built from the ONNX nodes, one
``op_<OpType>`` handler per supported op type."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..bundle import (INPUT, INT32, AddLayer, AvgPoolLayer, ConcatLayer, FlattenLayer,
                      InputSpec, MacroLayer, PoolLayer, Requant, TensorFormat)
from ..config import AcimSpec
from ..errors import ConfigError
from ..ref.requant import choose_shift, logit_scale, make_requant
from .analog_map import map_analog
from .integers import (fold_offset, folded_affine, sign_requant, to_ints, value_bound,
                       value_map)
from .nodes import label_of, node_error, plain_name

FLOAT = "float"          # the state of the graph's input before its input Quant


@dataclass
class Coded:
    """An ONNX tensor that holds integer codes: the output of bundle node ``node``
    (``"input"`` for the input quantizer) in format ``fmt`` (with its scale)."""

    node: str
    fmt: TensorFormat


@dataclass
class Pending:
    """An ONNX tensor of real values ``acc*m[n] + c[n]`` (per channel ``n``) of an
    integer ``acc`` that bundle node ``layer`` computes, waiting for the activation
    Quant that makes codes of them (or for the graph's output). ``kind``: ``macro``
    (acc: the exact dot product of the values of its input codes), ``avgpool`` (window
    sums of codes) or ``add`` (``acc = a*m + b*m_b``: two operands' codes)."""

    kind: str
    layer: object
    m: np.ndarray
    c: np.ndarray
    nodes: list
    inputs: list                         # the ONNX tensors of its input codes
    in_fmts: list                        # their formats
    m_b: np.ndarray | None = None
    relu: bool = False
    folded_bn: bool = False
    flatten_to: tuple | None = None      # ReduceMean without keepdims: (C,) after it

    def affine(self, scale: np.ndarray, shift: np.ndarray) -> None:
        """Apply ``y -> y*scale + shift`` per channel (BN, Mul, Div, Add, Sub)."""
        self.m, self.c = self.m * scale, self.c * scale + shift
        if self.m_b is not None:
            self.m_b = self.m_b * scale


class GraphWalk:
    """The walk over the graph's nodes in their (topological) order: what each ONNX
    tensor holds (:class:`Coded`, :class:`Pending`, :data:`FLOAT`) and the bundle
    nodes built so far."""

    def __init__(self, model, acim: AcimSpec | None = None):
        self.model = model
        self.acim = acim                          # macro layers on the analog macro
        self.states: dict = {model.graph.input[0].name: FLOAT}
        self.input: InputSpec | None = None
        self.input_codes: str | None = None         # the ONNX tensor of the input codes
        self.flatten_input = None                 # a Reshape/Flatten on the float input
        self.input_affine_ab = (1.0, 0.0)         # x -> a*x + b before the input Quant
        self.layers: list = []
        self.tensors: dict = {}
        self.sources: dict = {}                   # meta["qonnx"]["layers"]
        self.output_scale: float | None = None

    # ------------------------------------------------------------------ helpers
    def shape(self, tensor: str) -> tuple:
        """Shape without the batch dimension."""
        shape = self.model.get_tensor_shape(tensor)
        if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
            raise ConfigError(f"tensor {tensor!r} has no fixed shape after qonnx's shape "
                              f"inference ({shape}); export the model with a fixed input size")
        return tuple(shape[1:])

    def is_constant(self, tensor: str) -> bool:
        """An initializer, or a Quant node's output on initializers (quantized weights
        and biases)."""
        if self.model.get_initializer(tensor) is not None:
            return True
        producer = self.model.find_producer(tensor)
        return producer is not None and producer.op_type in ("Quant", "BipolarQuant") \
            and all(self.model.get_initializer(t) is not None for t in producer.input)

    def constant(self, node, index: int, what: str) -> np.ndarray:
        """Input ``index`` of ``node``: a constant, or a Quant of constants (a quantized
        bias), evaluated with qonnx's own ``quant``."""
        if index >= len(node.input) or not node.input[index]:
            raise node_error(node, f"its {what} is missing")
        value = self.model.get_initializer(node.input[index])
        producer = self.model.find_producer(node.input[index])
        if value is None and producer is not None and producer.op_type == "Quant" \
                and all(self.is_constant(t) for t in producer.input):
            from qonnx.custom_op.general.quant import quant
            x, scale, zero, bits = (np.asarray(self.model.get_initializer(t), np.float32)
                                    for t in producer.input)
            return quant(x, scale, zero, bits, bool(self.attr(producer, "signed", 1)),
                         bool(self.attr(producer, "narrow", 0)),
                         self.attr(producer, "rounding_mode", "ROUND"))
        if value is None:
            raise node_error(node, f"its {what} ({node.input[index]}) is not a constant")
        return np.asarray(value)

    def attr(self, node, name: str, default=None):
        import onnx
        for a in node.attribute:
            if a.name == name:
                value = onnx.helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def quant_format(self, node) -> tuple[TensorFormat, bool, str]:
        """(format with scale, narrow, rounding mode) of a Quant / BipolarQuant node
        with zero point 0 and one or more scales (the caller checks how many)."""
        scale = self.constant(node, 1, "scale").astype(np.float32)
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise node_error(node, "its scale must be positive and finite")
        if node.op_type == "BipolarQuant":
            return TensorFormat(1, False, True, float(scale.reshape(-1)[0])), False, "ROUND"
        zero = self.constant(node, 2, "zero point")
        bits = self.constant(node, 3, "bit width")
        if np.any(zero != 0):
            raise node_error(node, "zero points other than 0 are not supported")
        if bits.size != 1 or not float(bits.reshape(-1)[0]).is_integer() \
                or not 1 <= float(bits.reshape(-1)[0]) <= 8:
            raise node_error(node, f"bit width {bits.tolist()} is not an integer in 1..8")
        signed, b = bool(self.attr(node, "signed", 1)), int(bits.reshape(-1)[0])
        if signed and b == 1:                 # qonnx's quant: the sign, -s or +s
            return TensorFormat(1, False, True, float(scale.reshape(-1)[0])), False, "ROUND"
        return (TensorFormat(b, signed, False, float(scale.reshape(-1)[0])),
                bool(self.attr(node, "narrow", 0)), self.attr(node, "rounding_mode", "ROUND"))

    def state(self, node, index: int = 0):
        name = node.input[index]
        if name not in self.states:
            what = "a constant" if self.is_constant(name) else "not produced by a node the " \
                "import has read"
            raise node_error(node, f"its input {index} ({name!r}) is {what}")
        return self.states[name]

    def coded(self, node, index: int = 0) -> Coded:
        """The codes at input ``index`` of ``node`` (an error for anything else)."""
        st = self.state(node, index)
        if st is FLOAT:
            raise node_error(node, "it reads the float input: quantize the input first "
                             "(an input Quant, Brevitas QuantIdentity)")
        if isinstance(st, Pending):
            source = label_of(self.model, st.nodes[0])
            raise node_error(node, f"it reads the real output of {source} before any "
                             "activation Quant: put one in between (QuantReLU / "
                             "QuantIdentity)")
        return st

    def pending(self, node) -> Pending | None:
        st = self.state(node)
        if isinstance(st, Pending):
            consumers = self.model.find_consumers(node.input[0]) or []
            if len(consumers) > 1:
                raise node_error(node, f"the real output of {label_of(self.model, st.nodes[0])} "
                                 f"feeds {len(consumers)} nodes; quantize it once (an activation "
                                 "Quant) and branch from the codes")
            st.nodes.append(node.name)
            return st
        return None

    def put(self, node, state) -> None:
        self.states[node.output[0]] = state

    def add_layer(self, layer, fmt: TensorFormat, source: dict) -> Coded:
        self.layers.append(layer)
        self.tensors[layer.name] = fmt
        self.sources[layer.name] = source
        return Coded(layer.name, fmt)

    # ------------------------------------------------------------------ weights
    def weight(self, node, index: int, transposed: bool) -> tuple[np.ndarray, np.ndarray, int]:
        """(int8 weight [N, ...], per-channel scale [N], bits) from the Quant or
        BipolarQuant node that feeds input ``index``; ``transposed``: the constant is
        [K, N]."""
        from qonnx.custom_op.general.bipolar_quant import binary_quant
        from qonnx.custom_op.general.quant import quant
        producer = self.model.find_producer(node.input[index])
        if producer is None:
            raise node_error(node, "its weights are float constants without a Quant node; "
                             "quantize them (e.g. Brevitas QuantConv2d / QuantLinear)")
        if producer.op_type not in ("Quant", "BipolarQuant"):
            raise node_error(producer, "weights must come from a Quant or BipolarQuant node")
        w = self.constant(producer, 0, "weight").astype(np.float32)
        scale = self.constant(producer, 1, "scale").astype(np.float32)
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise node_error(producer, "its scale must be positive and finite")
        if producer.op_type == "BipolarQuant":
            real, bits = binary_quant(w, scale), 1
        else:
            fmt, narrow, mode = self.quant_format(producer)
            bits = fmt.bits
            if not (fmt.signed or fmt.bipolar):
                raise node_error(producer, f"weights must be signed with 2..8 bits (or "
                                 f"bipolar), got unsigned {bits} bit(s)")
            try:
                real = quant(w, scale, np.float32(0), np.float32(bits), True, narrow, mode) \
                    if not fmt.bipolar else binary_quant(w, scale)
            except Exception as exc:            # an unknown rounding mode
                raise node_error(producer, f"qonnx cannot evaluate it: {exc}") from None
        w_int = np.round(real / scale)
        try:
            full = np.broadcast_to(scale, w.shape).astype(np.float64)
        except ValueError:
            raise node_error(producer, f"its scale of shape {scale.shape} does not broadcast to "
                             f"the weights {w.shape}") from None
        if transposed:
            w_int, full = w_int.T, full.T
        rows = full.reshape(full.shape[0], -1)
        if not np.all(rows == rows[:, :1]):
            raise node_error(producer, "weight scales must be per tensor or per output channel")
        return np.ascontiguousarray(w_int).astype(np.int8), rows[:, 0], bits

    def bias(self, node, index: int, channels: int) -> np.ndarray:
        """Gemm's C (broadcast to the output) or Conv's B (one per channel); 0 when absent."""
        if index >= len(node.input) or not node.input[index]:
            return np.zeros(channels)
        if node.op_type == "Conv":
            return self.channel_vector(node, index, channels, "bias")
        return self.per_channel(node, self.constant(node, index, "bias"), channels, "bias")

    def channel_vector(self, node, index: int, channels: int, what: str) -> np.ndarray:
        """A constant input that ONNX defines as one value per channel (axis 1)."""
        value = self.constant(node, index, what).astype(np.float64)
        if value.shape != (channels,):
            raise node_error(node, f"its {what} has shape {value.shape}, not ({channels},)")
        return value

    def per_channel(self, node, value: np.ndarray, channels: int, what: str) -> np.ndarray:
        """A constant that is one value per output channel (broadcast over the rest)."""
        out = self.shape(node.output[0])
        try:
            full = np.broadcast_to(value.astype(np.float64), (1, *out))[0]
        except ValueError:
            raise node_error(node, f"its {what} of shape {value.shape} does not broadcast to "
                             f"the output {out}") from None
        rows = full.reshape(channels, -1)
        if not np.all(rows == rows[:, :1]):
            raise node_error(node, f"its {what} must be one value per output channel")
        return rows[:, 0]

    # ------------------------------------------------------------------ macro layers
    def start_macro(self, node, op: str, weight: np.ndarray, s_w: np.ndarray, w_bits: int,
                    bias: np.ndarray, **conv) -> None:
        x = self.coded(node)
        in_shape, out_shape = self.shape(node.input[0]), self.shape(node.output[0])
        if op == "linear" and len(in_shape) != 1:
            raise node_error(node, f"its input has shape {in_shape}: flatten it to one "
                             "dimension first")
        layer = MacroLayer(name=plain_name(node.name), op=op, weight=weight, w_bits=w_bits,
                           x_bits=x.fmt.bits, requant=None, in_shape=in_shape,
                           out_shape=out_shape, macro="dcim", inputs=(x.node,), **conv)
        if op == "conv2d" and weight.shape[1] * layer.groups != in_shape[0]:
            raise node_error(node, f"weights {weight.shape} with group = {layer.groups} do not "
                             f"fit the input {in_shape}")
        if tuple(out_shape) != layer.expected_out_shape():
            raise node_error(node, f"output shape {out_shape} is not the computed "
                             f"{layer.expected_out_shape()}")
        self.put(node, Pending("macro", layer, x.fmt.scale * s_w, bias, [node.name],
                                [node.input[0]], [x.fmt]))

    def op_Conv(self, node) -> None:
        strides = list(self.attr(node, "strides", [1, 1]))
        pads = list(self.attr(node, "pads", [0, 0, 0, 0]))
        dilations = list(self.attr(node, "dilations", [1, 1]))
        if self.attr(node, "auto_pad", "NOTSET") != "NOTSET" or len(set(pads)) != 1 \
                or len(strides) != 2 or strides[0] != strides[1] \
                or len(set(dilations)) != 1:
            raise node_error(node, f"strides {strides}, dilations {dilations} and pads {pads} "
                             "must be equal in both directions (explicit, symmetric padding)")
        weight, s_w, bits = self.weight(node, 1, transposed=False)
        if weight.ndim != 4:
            raise node_error(node, "only 2-D convolutions are supported")
        self.start_macro(node, "conv2d", weight, s_w, bits, self.bias(node, 2, len(s_w)),
                         stride=int(strides[0]), padding=int(pads[0]),
                         dilation=int(dilations[0]), groups=int(self.attr(node, "group", 1)))

    def op_Gemm(self, node) -> None:
        if self.attr(node, "transA", 0) or self.attr(node, "alpha", 1.0) != 1.0 \
                or self.attr(node, "beta", 1.0) != 1.0:
            raise node_error(node, "only Gemm with transA = 0, alpha = 1 and beta = 1")
        weight, s_w, bits = self.weight(node, 1, transposed=not self.attr(node, "transB", 0))
        self.start_macro(node, "linear", weight, s_w, bits, self.bias(node, 2, len(s_w)))

    def op_MatMul(self, node) -> None:
        weight, s_w, bits = self.weight(node, 1, transposed=True)
        self.start_macro(node, "linear", weight, s_w, bits, np.zeros(len(s_w)))

    # ------------------------------------------------------------------ elementwise
    def _constant_operand(self, node) -> tuple[Pending, np.ndarray] | None:
        """(pending, per-channel constant) of ``pending OP constant``, or None."""
        if len(node.input) != 2 or not self.is_constant(node.input[1]) \
                or self.is_constant(node.input[0]):
            return None
        p = self.pending(node)
        if p is None:
            raise node_error(node, "an elementwise op with a constant acts only on the real "
                             "output of a Conv/Gemm/MatMul, pooling or add, before its Quant")
        if p.relu:
            raise node_error(node, "an elementwise op after the Relu cannot be folded into the "
                             "requantizer; move it before the Relu")
        return p, self.per_channel(node, self.constant(node, 1, "constant"), len(p.c),
                                   "constant")

    def _affine(self, node, how: str) -> None:
        if self.states.get(node.input[0]) is FLOAT and len(node.input) == 2 \
                and self.is_constant(node.input[1]):
            return self.input_affine(node, how)
        found = self._constant_operand(node)
        if found is None:
            raise node_error(node, f"only {node.op_type} of a constant (one value per channel) "
                             "is supported")
        p, k = found
        if how in ("div",) and np.any(k == 0):
            raise node_error(node, "division by 0")
        scale = {"mul": k, "div": 1 / k}.get(how, np.ones_like(k))
        shift = {"add": k, "sub": -k}.get(how, np.zeros_like(k))
        p.affine(scale, shift)
        self.put(node, p)

    def input_affine(self, node, how: str) -> None:
        """A model's own preprocessing of the float input by scalars (FINN's ``2x - 1``):
        kept as ``a*x + b`` and folded into the input quantizer's scale and offset."""
        k = self.constant(node, 1, "constant").astype(np.float64)
        if k.size != 1 or (how in ("mul", "div") and float(k.reshape(-1)[0]) <= 0):
            raise node_error(node, "preprocessing of the float input must be by one positive "
                             "number (Mul/Div) or one number (Add/Sub)")
        k = float(k.reshape(-1)[0])
        a, b = self.input_affine_ab
        self.input_affine_ab = {"mul": (a * k, b * k), "div": (a / k, b / k),
                                "add": (a, b + k), "sub": (a, b - k)}[how]
        self.put(node, FLOAT)

    def op_Add(self, node) -> None:
        if len(node.input) == 2 and not self.is_constant(node.input[0]) \
                and not self.is_constant(node.input[1]):
            return self.residual_add(node)
        self._affine(node, "add")

    def op_Sub(self, node) -> None:
        self._affine(node, "sub")

    def op_Mul(self, node) -> None:
        self._affine(node, "mul")

    def op_Div(self, node) -> None:
        self._affine(node, "div")

    def residual_add(self, node) -> None:
        a, b = self.coded(node, 0), self.coded(node, 1)
        if a.fmt.bipolar or b.fmt.bipolar:
            raise node_error(node, "a residual add of bipolar codes is not supported")
        shape = self.shape(node.output[0])
        if self.shape(node.input[0]) != shape or self.shape(node.input[1]) != shape:
            raise node_error(node, "a residual add takes two tensors of one shape (no "
                             "broadcasting)")
        layer = AddLayer(plain_name(node.name), shape, shape, requant=None, multiplier_b=None,
                         rounding="half_even",           # as qonnx's Quant (ROUND)
                         inputs=(a.node, b.node))
        c = shape[0]
        self.put(node, Pending("add", layer, np.full(c, a.fmt.scale), np.zeros(c),
                                [node.name], list(node.input[:2]), [a.fmt, b.fmt],
                                m_b=np.full(c, b.fmt.scale)))

    def op_BatchNormalization(self, node) -> None:
        p = self.pending(node)
        if p is None or p.relu or p.folded_bn:
            raise node_error(node, "batch norm is folded only into the real output of a "
                             "Conv/Gemm/MatMul, pooling or add (before its Relu and Quant)")
        n = len(p.c)
        gamma, beta, mean, var = (self.channel_vector(node, i, n, what) for i, what in
                                  enumerate(("scale", "bias", "mean", "variance"), start=1))
        g = gamma / np.sqrt(var + float(self.attr(node, "epsilon", 1e-5)))
        p.affine(g, beta - mean * g)
        p.folded_bn = True
        self.put(node, p)

    def op_Relu(self, node) -> None:
        p = self.pending(node)
        if p is not None:
            p.relu = True
            return self.put(node, p)
        x = self.coded(node)
        if x.fmt.signed or x.fmt.bipolar:
            raise node_error(node, "a Relu on signed or bipolar codes: put it before the "
                             "activation Quant (or use an unsigned QuantReLU)")
        self.put(node, x)                           # a no-op on unsigned codes

    def op_Identity(self, node) -> None:
        self.put(node, self.state(node))

    # ------------------------------------------------------------------ quantizers
    def op_Quant(self, node) -> None:
        if self.is_constant(node.input[0]):
            return                                   # weights: read with their layer
        fmt, narrow, mode = self.quant_format(node)
        if mode != "ROUND" or self.constant(node, 1, "scale").size != 1:
            raise node_error(node, f"activations need one scale per tensor and rounding ROUND "
                             f"(got {self.constant(node, 1, 'scale').size} scale(s), {mode})")
        st = self.state(node)
        if st is FLOAT:
            return self.input_quant(node, fmt, narrow)
        p = self.pending(node)
        if p is not None:
            return self.put(node, self.finish(p, node, fmt, narrow))
        x = self.coded(node)
        if x.fmt == fmt and not narrow:
            return self.put(node, x)           # the same quantizer again: nothing to do
        raise node_error(node, f"quantizing codes again with another format ({x.fmt.to_dict()} "
                         f"-> {fmt.to_dict()}) without a layer in between is not supported")

    op_BipolarQuant = op_Quant

    def op_Trunc(self, node) -> None:
        """Brevitas's truncating average pool: AveragePool then Trunc, in qonnx's
        semantics (``trunc_v1`` with 5 inputs, ``trunc_v2`` with 6): the window sum
        ``S``'s codes ``floor(round(S*m / scale) / t)`` with ``t`` a power of two; exact
        integers when ``m / scale`` is an integer (as Brevitas exports it)."""
        p = self.pending(node)
        if p is None or p.kind != "avgpool" or p.relu:
            raise node_error(node, "Trunc is supported only right after an AveragePool "
                             "(Brevitas TruncAvgPool2d)")
        scale = float(self.constant(node, 1, "scale").reshape(-1)[0])
        if np.any(self.constant(node, 2, "zero point") != 0):
            raise node_error(node, "zero points other than 0 are not supported")
        if len(node.input) == 6:                       # v2: output scale, output bits
            out_scale = float(self.constant(node, 4, "output scale").reshape(-1)[0])
            out_bits = int(self.constant(node, 5, "output bit width").reshape(-1)[0])
            t = 2.0 ** round(math.log2(out_scale / scale))
            signed = bool(self.attr(node, "signed", 1))
        else:
            in_bits = int(self.constant(node, 3, "input bit width").reshape(-1)[0])
            out_bits = int(self.constant(node, 4, "output bit width").reshape(-1)[0])
            t, out_scale, signed = 2.0 ** (in_bits - out_bits), scale, p.in_fmts[0].signed
        mode = str(self.attr(node, "rounding_mode", "FLOOR")).upper()   # Brevitas: 'floor'
        if mode not in ("FLOOR", "ROUND") or (mode == "ROUND" and t > 1) \
                or self.attr(node, "narrow", 0):
            raise node_error(node, f"only Trunc with rounding FLOOR (or ROUND where nothing is "
                             f"truncated), not narrow; got {mode}, a truncation by {t:g}")
        ratio = p.m / scale
        if not np.allclose(ratio, np.round(ratio), rtol=0, atol=1e-6) or not 1 <= out_bits <= 8:
            raise node_error(node, f"its scale {scale:.6g} does not divide the pool's step "
                             f"exactly (ratio {float(ratio[0]):.6g}) or its output has "
                             f"{out_bits} bits (1..8)")
        e = int(round(math.log2(t)))
        shift, up = max(e, 0), max(-e, 0)
        mult = np.round(ratio).astype(np.int64) << up
        fmt = TensorFormat(out_bits, signed, False, out_scale)
        lo, hi = fmt.codes
        p.layer.rounding = "floor" if mode == "FLOOR" else "half_even"
        p.layer.requant = Requant(mult, np.zeros(len(mult), np.int64), shift,
                                  lo, hi)
        p.nodes.append(node.name)
        source = {"nodes": p.nodes, "inputs": p.inputs, "value": node.output[0],
                  "output_scale": out_scale}
        self.put(node, self.add_layer(p.layer, fmt, source))

    def input_quant(self, node, fmt: TensorFormat, narrow: bool) -> None:
        if fmt.bits > 8 or self.input is not None:
            raise node_error(node, "the input quantizer must be unsigned, signed or bipolar, "
                             "1..8 bits")
        a, b = self.input_affine_ab            # Quant(a*x + b) = Quant'((x + b/a) / (s/a))
        self.input = InputSpec(shape=self.shape(self.model.graph.input[0].name),
                               bits=fmt.bits, scale=fmt.scale / a, signed=fmt.signed,
                               offset=-b / a, bipolar=fmt.bipolar, narrow=narrow)
        self.input_codes = node.output[0]
        x = Coded(INPUT, fmt)                   # in the model's domain: scale s
        if self.flatten_input is not None:
            shape = self.input.shape
            flat = FlattenLayer(plain_name(self.flatten_input.name), shape,
                                (int(np.prod(shape)),), inputs=(INPUT,))
            x = self.add_layer(flat, x.fmt, {"nodes": [self.flatten_input.name]})
        self.put(node, x)

    def finish(self, p: Pending, node, fmt: TensorFormat | None,
               narrow: bool = False) -> Coded:
        """Close the pending node ``p`` at ``node`` (its activation Quant with format
        ``fmt``; None: the graph's output, a wide requantizer)."""
        layer = p.layer
        if fmt is None:
            lo, hi = (0 if p.relu else INT32[0]), INT32[1]
        else:
            lo, hi = fmt.codes                   # narrow: qonnx drops the lowest signed /
            if narrow:                           # the highest unsigned code
                lo, hi = (lo + 1, hi) if fmt.signed else (lo, hi - 1)
            lo = max(lo, 0) if p.relu else lo
        try:
            if p.kind == "add":
                if fmt is not None and fmt.bipolar:
                    raise node_error(node, "a bipolar Quant after a residual add is not supported")
                acc_max = sum(value_bound(f) for f in p.in_fmts)
                s_o = fmt.scale if fmt else logit_scale(acc_max * np.maximum(
                    np.abs(p.m), np.abs(p.m_b)), p.c)
                shift = choose_shift(np.concatenate([p.m, p.m_b]) / s_o, p.c / s_o, acc_max)
                layer.requant = Requant(to_ints(p.m / s_o, shift), to_ints(p.c / s_o, shift),
                                        shift, lo, hi)
                layer.multiplier_b = to_ints(p.m_b / s_o, shift)
            elif p.kind == "macro" and self.acim is not None:
                if fmt is not None and (fmt.signed or fmt.bipolar or lo != 0):
                    raise node_error(node, "the analog macro's ADC gives unsigned codes: its "
                                     "activation must be an unsigned Quant (QuantReLU)")
                m, c = folded_affine(layer, p.in_fmts[0], p.m, p.c)
                s_o = map_analog(layer, m, c, fmt.scale if fmt else None,
                                 hi if fmt else None, self.acim, len(self.sources))
            else:
                acc_max = self.acc_bound(p)
                s_o = fmt.scale if fmt else logit_scale(acc_max * np.abs(p.m), p.c)
                if fmt is not None and fmt.bipolar:
                    layer.requant = sign_requant(p.m, p.c, p.relu)
                else:
                    layer.requant = make_requant(p.m / s_o, p.c / s_o, int(acc_max.max()),
                                                 lo, hi, self.folded_shift(p, s_o))
                if p.kind == "macro":
                    fold_offset(layer, p.in_fmts[0])
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(f"layer {layer.name}: no integer requantizer fits: {exc}") \
                from None
        out_fmt = fmt if fmt is not None else TensorFormat(32, True, False, s_o)
        if fmt is None:
            self.output_scale = s_o
        source = {"nodes": p.nodes + ([node.name] if node is not None else []),
                  "inputs": p.inputs, "value": node.input[0] if node is not None else None,
                  "output_scale": s_o}
        x = self.add_layer(layer, replace(out_fmt, scale=s_o), source)
        if p.flatten_to is not None:
            flat = FlattenLayer(layer.name + ".flat", layer.out_shape, p.flatten_to,
                                inputs=(layer.name,))
            x = self.add_layer(flat, x.fmt, {"nodes": [p.nodes[0]]})
        return x

    def folded_shift(self, p: Pending, s_o: float) -> int | None:
        """The shift of a macro layer's requantizer that stays safe once the input's
        offset is folded in (M' = a*M, B' = B - M*o*colsum: :func:`fold_offset`);
        None: no offset, :func:`make_requant` picks it."""
        if p.kind != "macro":
            return None
        a, o = value_map(p.in_fmts[0])
        if (a, o) == (1, 0):
            return None
        w = p.layer.matrix().astype(np.int64)
        colsum = np.abs(w.sum(axis=0))
        acc_u = np.abs(w).sum(axis=0) * ((1 << p.layer.x_bits) - 1)
        return choose_shift(a * p.m / s_o, np.abs(p.c / s_o) + np.abs(p.m / s_o) * o * colsum
                            + 1, int(acc_u.max()))

    def acc_bound(self, p: Pending) -> np.ndarray:
        """Per channel, the largest |acc| whose real value is ``acc*m + c``."""
        layer, fmt = p.layer, p.in_fmts[0]
        if p.kind == "avgpool":
            window = layer.kernel[0] * layer.kernel[1]
            return np.full(len(p.c), window * value_bound(fmt), np.int64)
        w_abs = np.abs(layer.matrix().astype(np.int64)).sum(axis=0)
        return w_abs * value_bound(fmt)

    # ------------------------------------------------------------------ host ops
    def op_MaxPool(self, node) -> None:
        kernel = list(self.attr(node, "kernel_shape", []))
        strides = list(self.attr(node, "strides", [1, 1]))
        x = self.coded(node)
        if len(kernel) != 2 or kernel[0] != kernel[1] or len(strides) != 2 \
                or strides[0] != strides[1] \
                or any(self.attr(node, "pads", [0, 0, 0, 0])) \
                or any(d != 1 for d in self.attr(node, "dilations", [1, 1])) \
                or self.attr(node, "ceil_mode", 0) \
                or self.attr(node, "auto_pad", "NOTSET") != "NOTSET":
            raise node_error(node, f"only square max pooling without padding, dilation or "
                             f"ceil mode (kernel {kernel}, strides {strides})")
        layer = PoolLayer(plain_name(node.name), self.shape(node.input[0]),
                          self.shape(node.output[0]), kernel=int(kernel[0]),
                          stride=int(strides[0]), inputs=(x.node,))
        self.put(node, self.add_layer(layer, x.fmt, {"nodes": [node.name]}))

    def _avgpool(self, node, kernel: tuple, stride: tuple, flatten_to=None) -> None:
        x = self.coded(node)
        if x.fmt.bipolar:
            raise node_error(node, "average pooling of bipolar codes is not supported")
        in_shape = self.shape(node.input[0])
        out_shape = (in_shape[0], (in_shape[1] - kernel[0]) // stride[0] + 1,
                     (in_shape[2] - kernel[1]) // stride[1] + 1)
        layer = AvgPoolLayer(plain_name(node.name), in_shape, out_shape, kernel=kernel,
                             rounding="half_even",       # as qonnx's Quant (ROUND)
                             stride=stride, requant=None, inputs=(x.node,))
        c = in_shape[0]
        self.put(node, Pending("avgpool", layer, np.full(c, x.fmt.scale / (kernel[0] * kernel[1])),
                                np.zeros(c), [node.name], [node.input[0]], [x.fmt],
                                flatten_to=flatten_to))

    def op_AveragePool(self, node) -> None:
        kernel = tuple(self.attr(node, "kernel_shape", []))
        strides = tuple(self.attr(node, "strides", [1, 1]))
        if len(kernel) != 2 or len(strides) != 2 or any(self.attr(node, "pads", [0] * 4)) \
                or self.attr(node, "ceil_mode", 0) \
                or self.attr(node, "auto_pad", "NOTSET") != "NOTSET" \
                or any(d != 1 for d in self.attr(node, "dilations", [1, 1])):
            raise node_error(node, f"only 2-D average pooling without padding, dilation or ceil "
                             f"mode (kernel {list(kernel)}, strides {list(strides)})")
        self._avgpool(node, kernel, strides)

    def op_GlobalAveragePool(self, node) -> None:
        shape = self.shape(node.input[0])
        if len(shape) != 3:
            raise node_error(node, f"global average pooling needs a (C, H, W) input, got {shape}")
        self._avgpool(node, shape[1:], shape[1:])

    def op_ReduceMean(self, node) -> None:
        shape = self.shape(node.input[0])
        axes = self.attr(node, "axes")
        if axes is None and len(node.input) > 1:
            axes = self.constant(node, 1, "axes").tolist()
        if len(shape) != 3 or sorted(a % 4 for a in (axes or [])) != [2, 3]:
            raise node_error(node, f"only the mean over the spatial axes [2, 3] of a (C, H, W) "
                             f"tensor (global average pooling), got axes {axes}")
        keep = self.attr(node, "keepdims", 1)
        self._avgpool(node, shape[1:], shape[1:], None if keep else (shape[0],))

    def op_Concat(self, node) -> None:
        xs = [self.coded(node, i) for i in range(len(node.input))]
        shape = self.shape(node.output[0])
        if self.attr(node, "axis") % (len(shape) + 1) != 1:
            raise node_error(node, "only concatenation along the channels (axis 1)")
        if any(x.fmt != xs[0].fmt for x in xs):
            raise node_error(node, "the concatenated tensors must share one quantizer (one "
                             f"format and scale), got {[x.fmt.to_dict() for x in xs]}")
        layer = ConcatLayer(plain_name(node.name), tuple(self.shape(t) for t in node.input),
                            shape, inputs=tuple(x.node for x in xs))
        self.put(node, self.add_layer(layer, xs[0].fmt, {"nodes": [node.name]}))

    def op_Reshape(self, node) -> None:
        in_shape, out_shape = self.shape(node.input[0]), self.shape(node.output[0])
        st = self.state(node)
        if st is FLOAT:
            if out_shape != in_shape:
                if self.flatten_input is not None or \
                        out_shape != (int(np.prod(in_shape)),):
                    raise node_error(node, "only one flattening of the float input is supported")
                self.flatten_input = node
            return self.put(node, FLOAT)
        x = self.coded(node)
        if in_shape == out_shape:
            return self.put(node, x)
        if out_shape != (int(np.prod(in_shape)),):
            raise node_error(node, f"only flattening to (C*H*W,) is supported, not {in_shape} "
                             f"-> {out_shape}")
        layer = FlattenLayer(plain_name(node.name), in_shape, out_shape, inputs=(x.node,))
        self.put(node, self.add_layer(layer, x.fmt, {"nodes": [node.name]}))

    op_Flatten = op_Reshape
