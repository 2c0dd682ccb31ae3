"""QONNX model -> integer :class:`~cimstack.bundle.Bundle` (no torch, no Brevitas).

The model is read with ``qonnx``'s ``ModelWrapper`` and cleaned up with
``qonnx.util.cleanup.cleanup_model`` (shape inference, constant folding that keeps the
``Quant`` nodes, unique node and readable tensor names). The graph must then be a
chain from its one input to its one output that today's bundle expresses exactly:

    [Reshape/Flatten] Quant(unsigned)                               the input quantizer
    { Conv | Gemm | MatMul  [Add const] [BatchNormalization] [Relu] Quant(unsigned)
      [MaxPool] [Reshape/Flatten] }                                 hidden macro layers
    Conv | Gemm | MatMul  [Add const] [BatchNormalization] [Relu]   the logits

with the weights of every Conv/Gemm/MatMul from a signed ``Quant`` node on constants.
With ``s_x`` the input's scale, ``s_w[n]`` the weights' (per tensor or per output
channel), ``b[n]`` the constant bias and the batch norm folded as ``g[n] = gamma /
sqrt(var + eps)``, a macro layer's real output is ``y = acc*m[n] + c[n]`` with ``acc``
the exact integer dot product, ``m = s_x*s_w*g`` and ``c = beta + (b - mean)*g``; the
activation ``Quant`` (scale ``s_o``, ``a`` bits) makes its codes
``clip(round(y / s_o), 0, 2^a - 1)``, which the requantizer
``clamp((acc*M + B + r) >> shift, 0, 2^a - 1)`` computes with ``M, B, shift`` from
:func:`cimstack.ref.requant.make_requant` of ``m / s_o`` and ``c / s_o`` (the Brevitas
exporter's rule, :mod:`cimstack.quant.export`). The last layer has no activation
``Quant``: its requantizer is wide (int32 codes, output scale from
:func:`cimstack.ref.requant.logit_scale`, kept in ``meta["output_scale"]``).

Anything else stops the import with one :class:`ConfigError` naming the node (by its
name in the file: the cleanup renames nodes, bundle layers take the new names), its op
type and the supported set. ``meta["qonnx"]`` records, per bundle layer, the ONNX nodes
it came from and the tensors that hold its input and its real output values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..bundle import INT32, Bundle, FlattenLayer, InputSpec, MacroLayer, PoolLayer
from ..config import DcimSpec
from ..errors import BundleError, ConfigError
from ..ref.requant import logit_scale, make_requant

SUPPORTED_OPS = ("Quant", "Conv", "Gemm", "MatMul", "Add", "BatchNormalization", "Relu",
                 "MaxPool", "Reshape", "Flatten")
SUPPORTED = ("Quant (unsigned activations, signed 2..8-bit weights, zero point 0), Conv "
             "(groups 1, dilation 1, equal strides and symmetric padding), Gemm, MatMul, "
             "Add of a constant bias, BatchNormalization (folded), Relu, MaxPool, "
             "Reshape/Flatten to (C*H*W,), in a chain (docs/models.md)")
IMPORT_MACROS = ("dcim",)
PLAIN = re.compile(r"[^A-Za-z0-9_.-]")
FILE_NAME = "cimstack.file_name"     # node metadata: the node's name in the model file


def label(node) -> str:
    """The node's name in the model file (qonnx's cleanup renames nodes), quoted."""
    names = [p.value for p in node.metadata_props if p.key == FILE_NAME]
    return repr(names[0] if names else node.name)


def _error(node, why: str) -> ConfigError:
    return ConfigError(f"node {label(node)} ({node.op_type}): {why}; supported: {SUPPORTED}")


def load_qonnx(path: str | Path, batch: int | None = None):
    """The cleaned-up ``ModelWrapper`` of the QONNX file ``path`` (with its batch size
    changed to ``batch`` when given); a missing or non-ONNX file is a ConfigError."""
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    path = Path(path)
    if not path.is_file():
        problem = "is not a file" if path.exists() else "does not exist"
        raise ConfigError(f"{path} {problem}; give a QONNX model (.onnx), e.g. written by "
                          "brevitas.export.export_qonnx")
    try:
        proto = onnx.load(str(path))
    except Exception as exc:               # protobuf's DecodeError and friends
        raise ConfigError(f"{path} is not an ONNX model ({type(exc).__name__}); export one "
                          "with brevitas.export.export_qonnx") from None
    if not proto.graph.node:
        raise ConfigError(f"{path} is not an ONNX model: its graph has no nodes; export "
                          "one with brevitas.export.export_qonnx")
    for node in proto.graph.node:
        if node.name:
            tag = node.metadata_props.add()
            tag.key, tag.value = FILE_NAME, node.name
    try:
        model = cleanup_model(ModelWrapper(proto), override_inpsize=batch)
    except Exception as exc:               # qonnx's shape inference on a broken graph
        raise ConfigError(f"{path}: qonnx could not clean up the model (shape inference, "
                          f"constant folding): {type(exc).__name__}: {exc}") from None
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ConfigError(f"{path}: the model has {len(graph.input)} inputs and "
                          f"{len(graph.output)} outputs; the import takes one of each")
    return model


@dataclass
class _Pending:
    """A macro layer whose requantizer waits for its activation Quant (or the output):
    real output ``acc*m + c`` per channel."""

    layer: MacroLayer
    m: np.ndarray
    c: np.ndarray
    nodes: list
    input: str
    relu: bool = False
    folded_bn: bool = False


@dataclass
class _Chain:
    """The walk along the chain: what the current tensor holds and what was built."""

    model: object
    tensor: str
    codes: tuple | None = None              # (scale, bits) once the input is quantized
    input: InputSpec | None = None
    pending: _Pending | None = None
    layers: list = field(default_factory=list)
    sources: dict = field(default_factory=dict)      # meta["qonnx"]["layers"]
    visited: set = field(default_factory=set)
    output_scale: float | None = None

    # ------------------------------------------------------------------ helpers
    def shape(self, tensor: str) -> tuple:
        """Shape without the batch dimension."""
        shape = self.model.get_tensor_shape(tensor)
        if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
            raise ConfigError(f"tensor {tensor!r} has no fixed shape after qonnx's shape "
                              f"inference ({shape}); export the model with a fixed input size")
        return tuple(shape[1:])

    def constant(self, node, index: int, what: str) -> np.ndarray:
        if index >= len(node.input) or not node.input[index]:
            raise _error(node, f"its {what} is missing")
        value = self.model.get_initializer(node.input[index])
        if value is None:
            raise _error(node, f"its {what} ({node.input[index]}) is not a constant")
        return np.asarray(value)

    def attr(self, node, name: str, default=None):
        import onnx
        for a in node.attribute:
            if a.name == name:
                value = onnx.helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def quant_attrs(self, node) -> tuple[np.ndarray, int, bool, bool, str]:
        """(scale, bits, signed, narrow, rounding mode) of a Quant node, zero point 0."""
        scale = self.constant(node, 1, "scale").astype(np.float32)
        zero = self.constant(node, 2, "zero point")
        bits = self.constant(node, 3, "bit width")
        if np.any(zero != 0):
            raise _error(node, "zero points other than 0 are not supported")
        if bits.size != 1 or not float(bits.reshape(-1)[0]).is_integer() \
                or not 1 <= float(bits.reshape(-1)[0]) <= 8:
            raise _error(node, f"bit width {bits.tolist()} is not an integer in 1..8")
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise _error(node, "its scale must be positive and finite")
        return (scale, int(bits.reshape(-1)[0]), bool(self.attr(node, "signed", 1)),
                bool(self.attr(node, "narrow", 0)), self.attr(node, "rounding_mode", "ROUND"))

    def mark(self, node) -> None:
        self.visited.add(node.name)

    # ------------------------------------------------------------------ weights
    def weight(self, node, index: int, transposed: bool) -> tuple[np.ndarray, np.ndarray, int]:
        """(int8 weight [N, ...], per-channel scale [N], bits) from the Quant node that
        feeds input ``index``; ``transposed``: the constant is [K, N]."""
        from qonnx.custom_op.general.quant import quant
        producer = self.model.find_producer(node.input[index])
        if producer is None:
            raise _error(node, "its weights are float constants without a Quant node; "
                         "quantize them (e.g. Brevitas QuantConv2d / QuantLinear)")
        if producer.op_type != "Quant":
            raise _error(producer, "weights must come from a Quant node "
                         "(binary BipolarQuant weights come in a later step)")
        w = self.constant(producer, 0, "weight").astype(np.float32)
        scale, bits, signed, narrow, mode = self.quant_attrs(producer)
        if not signed or bits < 2:
            raise _error(producer, f"weights must be signed with 2..8 bits, got "
                         f"{'signed' if signed else 'unsigned'} {bits} bit(s)")
        try:
            real = quant(w, scale, np.float32(0), np.float32(bits), signed, narrow, mode)
        except Exception as exc:            # an unknown rounding mode
            raise _error(producer, f"qonnx cannot evaluate it: {exc}") from None
        w_int = np.round(real / scale)
        try:
            full = np.broadcast_to(scale, w.shape).astype(np.float64)
        except ValueError:
            raise _error(producer, f"its scale of shape {scale.shape} does not broadcast to "
                         f"the weights {w.shape}") from None
        if transposed:
            w_int, full = w_int.T, full.T
        rows = full.reshape(full.shape[0], -1)
        if not np.all(rows == rows[:, :1]):
            raise _error(producer, "weight scales must be per tensor or per output channel")
        self.mark(producer)
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
            raise _error(node, f"its {what} has shape {value.shape}, not ({channels},)")
        return value

    def per_channel(self, node, value: np.ndarray, channels: int, what: str) -> np.ndarray:
        """A constant that is one value per output channel (broadcast over the rest)."""
        out = self.shape(node.output[0])
        try:
            full = np.broadcast_to(value.astype(np.float64), (1, *out))[0]
        except ValueError:
            raise _error(node, f"its {what} of shape {value.shape} does not broadcast to "
                         f"the output {out}") from None
        rows = full.reshape(channels, -1)
        if not np.all(rows == rows[:, :1]):
            raise _error(node, f"its {what} must be one value per output channel")
        return rows[:, 0]

    # ------------------------------------------------------------------ ops
    def start_macro(self, node, op: str, weight: np.ndarray, s_w: np.ndarray, w_bits: int,
                    bias: np.ndarray, stride: int = 1, padding: int = 0) -> None:
        if self.codes is None or self.pending is not None:
            raise _error(node, "a macro layer needs quantized unsigned inputs: put an "
                         "activation Quant (QuantReLU / QuantIdentity) before it")
        s_x, x_bits = self.codes
        in_shape, out_shape = self.shape(node.input[0]), self.shape(node.output[0])
        if op == "linear" and len(in_shape) != 1:
            raise _error(node, f"its input has shape {in_shape}: flatten it to one "
                         "dimension first")
        layer = MacroLayer(name=_plain(node.name), op=op, weight=weight, w_bits=w_bits,
                           x_bits=x_bits, requant=None, in_shape=in_shape,
                           out_shape=out_shape, stride=stride, padding=padding, macro="dcim")
        if tuple(out_shape) != layer.expected_out_shape():
            raise _error(node, f"output shape {out_shape} is not the computed "
                         f"{layer.expected_out_shape()}")
        self.pending = _Pending(layer, s_x * s_w, bias, [node.name], node.input[0])

    def op_Conv(self, node) -> None:
        strides = list(self.attr(node, "strides", [1, 1]))
        pads = list(self.attr(node, "pads", [0, 0, 0, 0]))
        if self.attr(node, "group", 1) != 1:
            raise _error(node, f"groups = {self.attr(node, 'group')}: grouped and depthwise "
                         "convolutions come in a later step")
        if any(d != 1 for d in self.attr(node, "dilations", [1, 1])):
            raise _error(node, "dilated convolutions are not supported")
        if self.attr(node, "auto_pad", "NOTSET") != "NOTSET" or len(set(pads)) != 1 \
                or len(strides) != 2 or strides[0] != strides[1]:
            raise _error(node, f"strides {strides} and pads {pads} must be equal in both "
                         "directions (explicit, symmetric padding)")
        weight, s_w, bits = self.weight(node, 1, transposed=False)
        if weight.ndim != 4:
            raise _error(node, "only 2-D convolutions are supported")
        self.start_macro(node, "conv2d", weight, s_w, bits, self.bias(node, 2, len(s_w)),
                         stride=int(strides[0]), padding=int(pads[0]))

    def op_Gemm(self, node) -> None:
        if self.attr(node, "transA", 0) or self.attr(node, "alpha", 1.0) != 1.0 \
                or self.attr(node, "beta", 1.0) != 1.0:
            raise _error(node, "only Gemm with transA = 0, alpha = 1 and beta = 1")
        weight, s_w, bits = self.weight(node, 1, transposed=not self.attr(node, "transB", 0))
        self.start_macro(node, "linear", weight, s_w, bits, self.bias(node, 2, len(s_w)))

    def op_MatMul(self, node) -> None:
        weight, s_w, bits = self.weight(node, 1, transposed=True)
        self.start_macro(node, "linear", weight, s_w, bits, np.zeros(len(s_w)))

    def op_Add(self, node) -> None:
        p = self.pending
        if p is None or p.relu or self.model.get_initializer(node.input[1]) is None:
            raise _error(node, "only a constant bias added right after Conv/Gemm/MatMul "
                         "is supported (residual Add comes in a later step)")
        p.c = p.c + self.per_channel(node, self.constant(node, 1, "bias"), len(p.c), "bias")
        p.nodes.append(node.name)

    def op_BatchNormalization(self, node) -> None:
        p = self.pending
        if p is None or p.relu or p.folded_bn:
            raise _error(node, "batch norm is folded only right after Conv/Gemm/MatMul")
        n = len(p.c)
        gamma, beta, mean, var = (self.channel_vector(node, i, n, what) for i, what in
                                  enumerate(("scale", "bias", "mean", "variance"), start=1))
        g = gamma / np.sqrt(var + float(self.attr(node, "epsilon", 1e-5)))
        p.m, p.c = p.m * g, beta + (p.c - mean) * g
        p.folded_bn = True
        p.nodes.append(node.name)

    def op_Relu(self, node) -> None:
        if self.pending is not None:
            self.pending.relu = True
            self.pending.nodes.append(node.name)
        elif self.codes is None:
            raise _error(node, "a Relu on the float input (before the input Quant)")
        # on unsigned codes a Relu changes nothing

    def op_Quant(self, node) -> None:
        if self.model.get_initializer(node.input[0]) is not None:
            raise _error(node, "a Quant on constants that feeds no Conv/Gemm/MatMul weight")
        scale, bits, signed, narrow, mode = self.quant_attrs(node)
        if signed or narrow or mode != "ROUND" or scale.size != 1:
            raise _error(node, f"activations must be unsigned, not narrow, one scale per "
                         f"tensor, rounding ROUND (got signed={int(signed)}, narrow="
                         f"{int(narrow)}, {scale.size} scale(s), {mode}); signed and "
                         "bipolar activations come in a later step")
        s = float(scale.reshape(-1)[0])
        if self.pending is not None:
            self.finish(node.input[0], node, s, 0, (1 << bits) - 1)
        elif self.codes is None:
            # a Reshape before it became a FlattenLayer: the input is the graph's
            self.input = InputSpec(shape=self.shape(self.model.graph.input[0].name),
                                   bits=bits, scale=s)
        else:
            raise _error(node, "quantizing codes again without a macro layer in between "
                         "is not supported")
        self.codes = (s, bits)

    def op_MaxPool(self, node) -> None:
        kernel = list(self.attr(node, "kernel_shape", []))
        strides = list(self.attr(node, "strides", [1, 1]))
        if self.codes is None or self.pending is not None:
            raise _error(node, "max pooling must follow an activation Quant")
        if len(kernel) != 2 or kernel[0] != kernel[1] or len(strides) != 2 \
                or strides[0] != strides[1] \
                or any(self.attr(node, "pads", [0, 0, 0, 0])) \
                or any(d != 1 for d in self.attr(node, "dilations", [1, 1])) \
                or self.attr(node, "ceil_mode", 0) \
                or self.attr(node, "auto_pad", "NOTSET") != "NOTSET":
            raise _error(node, f"only square max pooling without padding, dilation or "
                         f"ceil mode (kernel {kernel}, strides {strides})")
        self.layers.append(PoolLayer(_plain(node.name), self.shape(node.input[0]),
                                     self.shape(node.output[0]), kernel=int(kernel[0]),
                                     stride=int(strides[0])))
        self.sources[_plain(node.name)] = {"nodes": [node.name], "output": node.output[0]}

    def op_Reshape(self, node) -> None:
        in_shape, out_shape = self.shape(node.input[0]), self.shape(node.output[0])
        if self.pending is not None:
            raise _error(node, "reshaping between a Conv/Gemm/MatMul and its activation "
                         "Quant is not supported")
        if in_shape == out_shape:
            return
        if out_shape != (int(np.prod(in_shape)),):
            raise _error(node, f"only flattening to (C*H*W,) is supported, not {in_shape} "
                         f"-> {out_shape}")
        self.layers.append(FlattenLayer(_plain(node.name), in_shape, out_shape))
        self.sources[_plain(node.name)] = {"nodes": [node.name], "output": node.output[0]}

    op_Flatten = op_Reshape

    def finish(self, value: str, node, s_o: float | None, lo: int, hi: int) -> None:
        """Close the pending macro layer at ``node`` (its activation Quant; None at the
        graph's output): its requantizer from ``acc*m + c`` with output scale ``s_o``
        (``None``: the logits' scale) and clamp ``[lo, hi]``."""
        p, self.pending = self.pending, None
        layer = p.layer
        w_abs = np.abs(layer.matrix().astype(np.int64)).sum(axis=0)
        acc_bound = w_abs * ((1 << layer.x_bits) - 1)
        if s_o is None:
            s_o = logit_scale(acc_bound * np.abs(p.m), p.c)
            self.output_scale = s_o
        try:
            layer.requant = make_requant(p.m / s_o, p.c / s_o, int(acc_bound.max()), lo, hi)
        except ValueError as exc:
            raise ConfigError(f"layer {layer.name}: no integer requantizer fits: {exc}") \
                from None
        self.layers.append(layer)
        self.sources[layer.name] = {"nodes": p.nodes + ([node.name] if node else []),
                                    "input": p.input, "value": value, "output_scale": s_o}


def _plain(name: str) -> str:
    """An ONNX node name as a bundle layer name (letters, digits, ``_ . -``)."""
    return (PLAIN.sub("_", name).lstrip(".-") or "layer")[:64]


def check_macro(macro: str) -> None:
    """The macro family the import can map layers onto."""
    if macro not in IMPORT_MACROS:
        raise ConfigError(f"--macro {macro}: the QONNX import maps layers onto "
                          f"{', '.join(IMPORT_MACROS)} for now (acim needs the analog "
                          "batch-norm gains and offsets, which the import does not derive yet)")


def import_qonnx(path: str | Path, macro: str = "dcim", dcim: DcimSpec | None = None,
                 name: str | None = None) -> Bundle:
    """Build (and validate) the bundle of the QONNX model at ``path`` (see the module
    doc); ``name`` defaults to the file's stem."""
    check_macro(macro)
    model = load_qonnx(path)
    graph = model.graph
    chain = _Chain(model, graph.input[0].name)
    output = graph.output[0].name
    while chain.tensor != output:
        consumers = model.find_consumers(chain.tensor) or []
        if len(consumers) != 1:
            nodes = ", ".join(f"{label(c)} ({c.op_type})" for c in consumers) or "none"
            raise ConfigError(f"tensor {chain.tensor!r} feeds {len(consumers)} nodes "
                              f"({nodes}); the import takes a chain of nodes for now "
                              f"(branches such as residual Adds come later); supported: "
                              f"{SUPPORTED}")
        node = consumers[0]
        handler = getattr(chain, f"op_{node.op_type}") if node.op_type in SUPPORTED_OPS \
            else None
        if handler is None:
            raise ConfigError(f"node {label(node)}: op type {node.op_type} is not supported; "
                              f"supported: {SUPPORTED}")
        if node.input[0] != chain.tensor:
            raise _error(node, f"the chain enters it at input {chain.tensor!r}, not its "
                         "first input")
        handler(node)
        chain.mark(node)
        chain.tensor = node.output[0]
    if chain.input is None:
        raise ConfigError(f"{path}: the model has no input Quant node; quantize the input "
                          "with an unsigned Quant (Brevitas QuantIdentity)")
    if chain.pending is not None:
        chain.finish(output, None, None, 0 if chain.pending.relu else INT32[0], INT32[1])
    else:
        chain.output_scale = chain.codes[0]
    left = [n for n in graph.node if n.name not in chain.visited]
    if left:
        raise ConfigError(f"node {label(left[0])} ({left[0].op_type}) is not on the chain "
                          f"from the input to the output; supported: {SUPPORTED}")
    if not any(isinstance(layer, MacroLayer) for layer in chain.layers):
        raise ConfigError(f"{path}: the model has no Conv, Gemm or MatMul layer")
    bundle = Bundle(name=_plain(name or Path(path).stem), input=chain.input,
                    layers=chain.layers, dcim=dcim or DcimSpec(),
                    meta={"source": "qonnx", "model": Path(path).name,
                          "output_scale": chain.output_scale,
                          "input_scale": chain.input.scale,
                          "qonnx": {"input": graph.input[0].name, "output": output,
                                    "layers": chain.sources}})
    try:
        bundle.validate()
    except (BundleError, ConfigError) as exc:
        raise ConfigError(f"{path}: the imported model is not a valid bundle: {exc}") from None
    return bundle
