"""The model bundle: what a trained network becomes for the reference, the emulated
overlay and the board. Plain ``.npy`` arrays and one JSON file; no torch, no pickle.

Layout of a bundle folder (docs/bundle.md)::

    bundle.json              schema 2: input quantizer, macro configuration, the nodes
                             of a DAG in order (each naming the tensors it reads), the
                             tensors' integer formats
    <layer>.weight.npy       int8 weights, torch layout [N, C/groups, kh, kw] or [N, K]
    <layer>.multiplier.npy   int64 requantizer multipliers M_n (within int32)
    <layer>.bias.npy         int64 requantizer biases B_n
    <layer>.multiplier_b.npy int64 second multipliers of a residual add

A bundle is written into a temporary folder next to its destination and renamed into
place, so a crash never leaves half a bundle. Loading checks every field and array
(existence, dtype, shape, value range) and raises :class:`BundleError` naming the file
and the problem. The readers here (:func:`read_schema_doc`, :func:`load_array`,
:func:`get_field`, :func:`get_shape`, :func:`check_object`) serve the SNN bundle too:

- every JSON object must hold only its known keys (``meta`` is free-form: any JSON
  object, kept and written back unread);
- array files are plain names inside the bundle folder (a symlink may not lead out of
  it), and a ``.npy`` header must declare the expected dtype and shape and exactly the
  bytes the file holds before anything is allocated;
- names (bundle, layers) are plain tokens, as they become file and folder names.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Union

import numpy as np

from .config import (AcimLayerParams, AcimSpec, DcimSpec, check_keys, check_range,
                     knob_bounds)
from .errors import BundleError, ConfigError
from .families import family_names, get_family
from .fileio import atomic_folder, jsonable

SCHEMA = "cimstack-bundle"
SCHEMA_VERSION = 2               # 1: a chain of layers (still read)
MACRO_SPECS = ("dcim", "acim")     # built-in configurations (fields); plug-ins: Bundle.specs
INT32 = (-(2**31), 2**31 - 1)
INT64_MAX = 2**63 - 1
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
MAX_ELEMENTS = 1 << 26          # largest shape a bundle may declare (elements)
MAX_JSON_BYTES = 64 << 20       # largest bundle.json / snn_bundle.json read
# The input quantizer divides float32 images by float32(scale): the scale must be a
# normal float32 (a subnormal or smaller one rounds to 0 or loses its precision and
# every input saturates; a larger one is inf).
SCALE_RANGE = (float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max))


def _in_range(where: str, value, lo: int, hi: int) -> None:
    """:func:`check_range` raising :class:`BundleError` (a damaged bundle, not a config)."""
    try:
        check_range(where, value, lo, hi)
    except ConfigError as exc:
        raise BundleError(str(exc)) from None


def check_name(where: str, name: Any, error: type = BundleError) -> None:
    """A bundle or layer name becomes a file or folder name (``<layer>.weight.npy``, the
    board's ``bundles/<name>``): 1 to 64 letters, digits, ``_``, ``.``, ``-``, not
    starting with ``.`` or ``-``."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise error(f"{where} = {name!r} is not a plain name: use 1 to 64 letters, digits, "
                    "'_', '.' or '-' (no path separators), not starting with '.' or '-'")


def requant_peak(acc_max: int, m_abs: int, b_abs: int, shift: int) -> int:
    """Largest ``|acc*M + B + r|`` the int64 requantizer can meet for ``|acc| <= acc_max``
    (exact Python integers); the requantizer is safe while it is at most 2^63 - 1."""
    return acc_max * m_abs + b_abs + ((1 << (shift - 1)) if shift > 0 else 0)


def weight_range(w_bits: int) -> tuple[int, int]:
    """Allowed integer weight values for ``w_bits`` (binary is {-1, +1})."""
    if w_bits == 1:
        return -1, 1
    return -(1 << (w_bits - 1)), (1 << (w_bits - 1)) - 1


@dataclass
class Requant:
    """Per-channel output stage ``clamp((acc*M + B + r) >> shift, lo, hi)``."""

    multiplier: np.ndarray
    bias: np.ndarray
    shift: int
    lo: int
    hi: int

    def validate(self, where: str, channels: int) -> None:
        for name in ("multiplier", "bias"):
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.dtype != np.int64 or arr.shape != (channels,):
                raise BundleError(
                    f"{where}.requant.{name} must be int64 of shape ({channels},), got "
                    f"{getattr(arr, 'dtype', type(arr).__name__)} {getattr(arr, 'shape', '')}")
        _check_values(f"{where}.requant.multiplier", self.multiplier, *INT32)
        _check_values(f"{where}.requant.bias", self.bias, -(2**62), 2**62)
        _in_range(f"{where}.requant.shift", self.shift, 0, 62)
        _in_range(f"{where}.requant.lo", self.lo, *INT32)
        _in_range(f"{where}.requant.hi", self.hi, self.lo, INT32[1])

    def check_headroom(self, where: str, acc_max: np.ndarray, why: str) -> None:
        """``acc*M + B + r`` must fit int64 for every ``|acc| <= acc_max[n]`` (the
        exporter's rule, :func:`cimstack.ref.requant.choose_shift`)."""
        for n, (a, m, b) in enumerate(zip(acc_max.tolist(), self.multiplier.tolist(),
                                          self.bias.tolist())):
            peak = requant_peak(a, abs(m), abs(b), self.shift)
            if peak > INT64_MAX:
                raise BundleError(
                    f"{where}: the int64 requantizer overflows on channel {n}: {why} give "
                    f"|acc| up to {a}, and |acc*M + B| with M = {m}, B = {b}, shift = "
                    f"{self.shift} reaches {peak} >= 2^63; re-export the bundle (the "
                    "exporter picks a smaller shift, M and B) or reduce K")


@dataclass
class MacroLayer:
    """A conv2d or linear layer that runs on a CIM macro."""

    name: str
    op: str                       # "conv2d" | "linear"
    weight: np.ndarray            # int8, [N, C, kh, kw] or [N, K]
    w_bits: int
    x_bits: int
    requant: Requant
    in_shape: tuple
    out_shape: tuple
    stride: int = 1
    padding: int = 0
    macro: str = "dcim"                       # a registered macro family (cimstack.families)
    analog: AcimLayerParams | None = None     # acim only: ABN gain/offset, noise key
    groups: int = 1                           # conv2d: channel groups (C = groups: depthwise)
    dilation: int = 1                         # conv2d: kernel dilation
    inputs: tuple = ()                        # the tensor it reads (see Bundle)
    adc_bits: int | None = None               # acim only: its ADC bits (None: the AcimSpec's)

    @property
    def channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def k(self) -> int:
        """Matrix rows: inputs per output (C*kh*kw for conv, all C even when grouped)."""
        return int(np.prod(self.weight.shape[1:])) * self.groups

    @property
    def vectors(self) -> int:
        """Matrix-vector products per image: the output pixels of a conv, 1 for linear."""
        return int(np.prod(self.out_shape[1:])) if self.op == "conv2d" else 1

    def matrix(self) -> np.ndarray:
        """The K x N weight matrix, row k = c*kh*kw + ky*kw + kx. A grouped conv is one
        block-diagonal matrix: output channel n of group g = n // (N/groups) reads only
        the input channels of group g; the other rows hold 0 (docs/macros.md)."""
        if self.groups == 1:
            return self.weight.reshape(self.channels, -1).T
        n_g, c_g = self.channels // self.groups, self.weight.shape[1]
        full = np.zeros((self.channels, c_g * self.groups, *self.weight.shape[2:]), np.int8)
        for g in range(self.groups):
            full[g * n_g:(g + 1) * n_g, g * c_g:(g + 1) * c_g] = self.weight[g * n_g:(g + 1) * n_g]
        return full.reshape(self.channels, -1).T

    def validate(self) -> None:
        where = f"layer {self.name}"
        if self.op not in ("conv2d", "linear"):
            raise BundleError(f"{where}: op {self.op!r} is not a macro op (conv2d, linear)")
        get_family(self.macro, BundleError, where)
        _in_range(f"{where}.w_bits", self.w_bits, 1, 8)
        _in_range(f"{where}.x_bits", self.x_bits, 1, 8)
        if self.adc_bits is not None:
            _in_range(f"{where}.adc_bits", self.adc_bits, *knob_bounds(AcimSpec, "adc_bits"))
        _in_range(f"{where}.stride", self.stride, 1, 64)
        _in_range(f"{where}.padding", self.padding, 0, 64)
        _in_range(f"{where}.dilation", self.dilation, 1, 64)
        _in_range(f"{where}.groups", self.groups, 1, 1 << 16)
        if self.op == "linear" and (self.groups, self.dilation, self.stride,
                                    self.padding) != (1, 1, 1, 0):
            raise BundleError(f"{where}: a linear layer has groups 1, dilation 1, stride 1 "
                              "and padding 0")
        ndim = 4 if self.op == "conv2d" else 2
        if not isinstance(self.weight, np.ndarray) or self.weight.dtype != np.int8 \
                or self.weight.ndim != ndim:
            raise BundleError(
                f"{where}.weight must be an int8 array with {ndim} dimensions, got "
                f"{getattr(self.weight, 'dtype', type(self.weight).__name__)} "
                f"{getattr(self.weight, 'shape', '')}")
        _check_values(f"{where}.weight", self.weight, *weight_range(self.w_bits))
        in_c = self.in_shape[0]
        if self.op == "conv2d" and (len(self.in_shape) != 3
                                    or self.weight.shape[1] * self.groups != in_c
                                    or self.channels % self.groups):
            raise BundleError(f"{where}: weight {self.weight.shape} with groups = "
                              f"{self.groups} does not fit input shape {self.in_shape} "
                              "(weight [N, C/groups, kh, kw], N a multiple of groups)")
        if self.groups > 1 and self.w_bits == 1:
            raise BundleError(f"{where}: a grouped binary conv has no encoding: the rows "
                              "outside a group hold 0, which binary {-1,+1} weights cannot; "
                              "use w_bits >= 2 or groups = 1")
        if self.op == "linear" and self.k != int(np.prod(self.in_shape)):
            raise BundleError(f"{where}: weight {self.weight.shape} expects {self.k} inputs "
                              f"but the input shape is {self.in_shape}")
        if tuple(self.out_shape) != self.expected_out_shape():
            raise BundleError(f"{where}: out_shape {tuple(self.out_shape)} does not match "
                              f"the computed {self.expected_out_shape()}")
        self.requant.validate(where, self.channels)

    def expected_out_shape(self) -> tuple:
        if self.op == "linear":
            return (self.channels,)
        _, h, w = self.in_shape
        kh, kw = ((k - 1) * self.dilation + 1 for k in self.weight.shape[2:])
        ho = (h + 2 * self.padding - kh) // self.stride + 1
        wo = (w + 2 * self.padding - kw) // self.stride + 1
        return (self.channels, ho, wo)


def _window_out(where: str, what: str, in_shape: tuple, kernel: tuple,
                stride: tuple) -> tuple:
    """(C, Ho, Wo) of a pooling window without padding over a (C, H, W) input."""
    if len(in_shape) != 3:
        raise BundleError(f"{where}: {what} needs a (C, H, W) input, got {tuple(in_shape)}")
    c, h, w = in_shape
    if kernel[0] > h or kernel[1] > w:
        raise BundleError(f"{where}: pooling window {list(kernel)} is larger than the "
                          f"input {tuple(in_shape)}")
    return (c, (h - kernel[0]) // stride[0] + 1, (w - kernel[1]) // stride[1] + 1)


@dataclass
class PoolLayer:
    """Integer max pooling on the host (commutes with the monotone requantizer)."""

    name: str
    in_shape: tuple
    out_shape: tuple
    kernel: int = 2
    stride: int = 2
    op: str = "maxpool2d"
    inputs: tuple = ()

    def validate(self) -> None:
        where = f"layer {self.name}"
        if self.op != "maxpool2d":
            raise BundleError(f"{where}: op {self.op!r} is not a pool op (maxpool2d)")
        _in_range(f"{where}.kernel", self.kernel, 1, 64)
        _in_range(f"{where}.stride", self.stride, 1, 64)
        expect = _window_out(where, "max pooling", self.in_shape, (self.kernel,) * 2, (self.stride,) * 2)
        if tuple(self.out_shape) != expect:
            raise BundleError(f"layer {self.name}: out_shape {tuple(self.out_shape)} does not "
                              f"match the computed {expect}")


# How a host node's requantizer rounds ``y / 2^shift`` (the macros' is half up, fixed in
# the kernels): half up, half to even (as qonnx's and torch's round), or down (floor);
# cimstack.ref.requant.shift_round.
ROUNDINGS = ("half_up", "half_even", "floor")


def _check_rounding(where: str, rounding) -> None:
    if rounding not in ROUNDINGS:
        raise BundleError(f"{where}.rounding = {rounding!r} is not one of "
                          f"{', '.join(ROUNDINGS)}")


@dataclass
class AvgPoolLayer:
    """Average pooling as an integer window sum and a per-channel requantizer
    ``clamp(round((sum*M + B) / 2^shift), lo, hi)`` with the node's ``rounding``
    (:data:`ROUNDINGS`, docs/macros.md); a global average pool is the window of the whole
    (H, W) input."""

    name: str
    in_shape: tuple
    out_shape: tuple
    kernel: tuple
    stride: tuple
    requant: Requant
    op: str = "avgpool2d"
    inputs: tuple = ()
    rounding: str = "half_up"

    def validate(self) -> None:
        where = f"layer {self.name}"
        for key in ("kernel", "stride"):
            value = getattr(self, key)
            if not isinstance(value, tuple) or len(value) != 2:
                raise BundleError(f"{where}.{key} must be a pair [h, w], got {value!r}")
            for v in value:
                _in_range(f"{where}.{key}", v, 1, 4096)
        expect = _window_out(where, "average pooling", self.in_shape, self.kernel, self.stride)
        if tuple(self.out_shape) != expect:
            raise BundleError(f"{where}: out_shape {tuple(self.out_shape)} does not match "
                              f"the computed {expect}")
        self.requant.validate(where, self.in_shape[0])
        _check_rounding(where, self.rounding)


@dataclass
class AddLayer:
    """Residual add of two tensors of one shape with their scales aligned by integer
    multipliers: ``clamp(round((a*M + b*M_b + B) / 2^shift), lo, hi)`` per channel with
    the node's ``rounding`` (:data:`ROUNDINGS`), ``M, B, shift, lo, hi`` in ``requant``
    (docs/macros.md)."""

    name: str
    in_shape: tuple
    out_shape: tuple
    requant: Requant
    multiplier_b: np.ndarray
    op: str = "add"
    inputs: tuple = ()
    rounding: str = "half_up"

    def validate(self) -> None:
        where = f"layer {self.name}"
        if tuple(self.out_shape) != tuple(self.in_shape):
            raise BundleError(f"{where}: an add keeps its input shape {tuple(self.in_shape)}, "
                              f"not {tuple(self.out_shape)}")
        channels = self.in_shape[0]
        self.requant.validate(where, channels)
        _check_rounding(where, self.rounding)
        b = self.multiplier_b
        if not isinstance(b, np.ndarray) or b.dtype != np.int64 or b.shape != (channels,):
            raise BundleError(f"{where}.multiplier_b must be int64 of shape ({channels},)")
        _check_values(f"{where}.multiplier_b", b, *INT32)


@dataclass
class ConcatLayer:
    """Channel concatenation (axis 0 of (C, ...)) of tensors of one integer format."""

    name: str
    in_shapes: tuple
    out_shape: tuple
    op: str = "concat"
    inputs: tuple = ()

    @property
    def in_shape(self) -> tuple:
        return tuple(self.in_shapes[0])

    def validate(self) -> None:
        where = f"layer {self.name}"
        rest = {tuple(s[1:]) for s in self.in_shapes}
        if len(self.in_shapes) < 2 or len(rest) != 1:
            raise BundleError(f"{where}: a concat takes two or more inputs that differ only "
                              f"in channels, got {[list(s) for s in self.in_shapes]}")
        expect = (sum(s[0] for s in self.in_shapes), *rest.pop())
        if tuple(self.out_shape) != expect:
            raise BundleError(f"{where}: out_shape {tuple(self.out_shape)} does not match "
                              f"the computed {expect}")


@dataclass
class FlattenLayer:
    """(C, H, W) -> (C*H*W,) in C, H, W order (as torch.flatten)."""

    name: str
    in_shape: tuple
    out_shape: tuple
    op: str = "flatten"
    inputs: tuple = ()

    def validate(self) -> None:
        size = math.prod(self.in_shape)          # exact (np.prod wraps past 2^63)
        if tuple(self.out_shape) != (size,):
            raise BundleError(f"layer {self.name}: flatten of {tuple(self.in_shape)} gives "
                              f"({size},), not {tuple(self.out_shape)}")


Layer = Union[MacroLayer, PoolLayer, AvgPoolLayer, AddLayer, ConcatLayer, FlattenLayer]
REQUANT_OPS = ("conv2d", "linear", "avgpool2d", "add")   # nodes that make new codes


INPUT = "input"       # the name of the network's input tensor in ``inputs``


@dataclass(frozen=True)
class TensorFormat:
    """The integer format of a tensor's codes (docs/macros.md, "Graph nodes and tensor formats").

    ``bits`` wide: unsigned codes in [0, 2^bits - 1], ``signed`` ones in
    [-2^(bits-1), 2^(bits-1) - 1], or ``bipolar`` (1 bit: codes {0, 1} stand for the
    values {-1, +1}). The real value is ``scale * value``; ``scale`` is None where the
    bundle does not know it (bundles of the built-in exporters record it in ``meta``).
    """

    bits: int
    signed: bool = False
    bipolar: bool = False
    scale: float | None = None

    @property
    def codes(self) -> tuple[int, int]:
        """Smallest and largest code."""
        if self.signed:
            return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return 0, (1 << self.bits) - 1

    @property
    def offset(self) -> int:
        """What a macro adds to a code to get its unsigned input ``u`` (the macros take
        unsigned bits): ``2^(bits-1)`` for signed codes, else 0."""
        return (1 << (self.bits - 1)) if self.signed else 0

    @staticmethod
    def of_range(lo: int, hi: int) -> "TensorFormat":
        """The narrowest unsigned (``lo >= 0``) or signed format holding [lo, hi]."""
        if lo >= 0:
            return TensorFormat(max(1, int(hi).bit_length()))
        return TensorFormat(max(int(hi).bit_length(), int(-lo - 1).bit_length()) + 1, True)

    def validate(self, where: str) -> None:
        _in_range(f"{where}.bits", self.bits, 1, 32)
        for key in ("signed", "bipolar"):
            if not isinstance(getattr(self, key), bool):
                raise BundleError(f"{where}.{key} must be true or false")
        if self.bipolar and (self.bits != 1 or self.signed):
            raise BundleError(f"{where}: a bipolar tensor has 1-bit unsigned codes {{0, 1}}")
        if self.scale is not None:
            _check_scale(f"{where}.scale", self.scale)

    def to_dict(self) -> dict:
        return {"bits": self.bits, "signed": self.signed, "bipolar": self.bipolar,
                "scale": self.scale}


def _check_scale(where: str, scale) -> None:
    lo, hi = SCALE_RANGE
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) \
            or not lo <= scale <= hi:                  # False for NaN too
        raise BundleError(
            f"{where} = {scale!r} must be a positive normal float32 number in "
            f"[{lo:.7g}, {hi:.7g}]: the input quantizer computes x / scale in float32, "
            "where a smaller (subnormal) scale saturates every input")


@dataclass
class InputSpec:
    """Input quantizer: ``x_int = clip(round_half_even((x - offset) / scale), lo, hi)``
    in float32, with ``[lo, hi]`` the codes of ``bits`` unsigned, or signed when
    ``signed``; ``bipolar`` (1 bit): ``x_int = 1 if x - offset >= 0 else 0``. The
    offset holds a model's own affine preprocessing (FINN's ``2x - 1``); ``narrow``
    drops the lowest signed code (qonnx's narrow range)."""

    shape: tuple
    bits: int
    scale: float
    signed: bool = False
    offset: float = 0.0
    bipolar: bool = False
    narrow: bool = False

    @property
    def format(self) -> TensorFormat:
        return TensorFormat(self.bits, self.signed, self.bipolar, float(self.scale))

    def values(self, codes: np.ndarray) -> np.ndarray:
        """Real inputs that the quantizer maps onto ``codes`` (float32)."""
        steps = 2 * np.asarray(codes) - 1 if self.bipolar else np.asarray(codes)
        return (steps * np.float32(self.scale) + np.float32(self.offset)).astype(np.float32)

    def validate(self) -> None:
        _in_range("input.bits", self.bits, 1, 8)
        for key in ("signed", "bipolar", "narrow"):
            if not isinstance(getattr(self, key), bool):
                raise BundleError(f"input.{key} must be true or false")
        if self.narrow and not self.signed:
            raise BundleError("input.narrow applies to a signed input quantizer only: set "
                              "it to false (or signed to true)")
        _check_scale("input.scale", self.scale)
        if isinstance(self.offset, bool) or not isinstance(self.offset, (int, float)) \
                or not math.isfinite(self.offset):
            raise BundleError(f"input.offset = {self.offset!r} must be a finite number")
        self.format.validate("input")


@dataclass
class Bundle:
    """A network ready for the macros: integer weights, requantizers, macro config.

    ``layers`` are the nodes of a DAG in an order where every node comes after the
    nodes it reads; a node reads the tensors named in its ``inputs`` (``"input"`` is the
    network's input, any other name the output of that node). An empty ``inputs`` is
    the previous node's output (the input for the first), so a chain needs no wiring.
    The last node's output is the network's output. ``tensors`` gives tensors' integer
    formats (:class:`TensorFormat`); a tensor not named there has the format its
    producer's code range implies (:meth:`formats`).
    """

    name: str
    input: InputSpec
    layers: list
    dcim: DcimSpec = field(default_factory=DcimSpec)
    meta: dict = field(default_factory=dict)
    acim: AcimSpec | None = None              # the analog macro, when a layer uses it
    tensors: dict = field(default_factory=dict)
    # the configurations of plug-in families (cimstack.families), by family name; the
    # built-in dcim and acim keep theirs in the fields above (:meth:`spec`)
    specs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        previous = INPUT
        for layer in self.layers:
            if not layer.inputs:
                layer.inputs = (previous,)
            layer.inputs = tuple(layer.inputs)
            previous = layer.name

    def spec(self, family: str):
        """The configuration of macro ``family`` this bundle holds (None when none)."""
        if family in MACRO_SPECS:
            return getattr(self, family)
        return self.specs.get(family)

    @property
    def macro_layers(self) -> list[MacroLayer]:
        return [layer for layer in self.layers if isinstance(layer, MacroLayer)]

    @property
    def output(self) -> str:
        """The name of the node whose output is the network's output."""
        return self.layers[-1].name

    def acim_for(self, layer: MacroLayer) -> AcimSpec | None:
        """The analog macro configuration ``layer`` runs under: the bundle's
        :class:`AcimSpec` with the layer's own ``adc_bits`` when it has one (None when
        the bundle has no acim configuration)."""
        if self.acim is None or layer.adc_bits is None:
            return self.acim
        return replace(self.acim, adc_bits=layer.adc_bits)

    def with_acim(self, **changes) -> "Bundle":
        """The same model under other analog-macro settings (noise level, seed, mode)."""
        return replace(self, acim=replace(self.acim, **changes))

    def formats(self) -> dict[str, TensorFormat]:
        """The integer format of every tensor: ``"input"`` and each node's output."""
        out = {INPUT: self.input.format}
        for layer in self.layers:
            rq = getattr(layer, "requant", None)
            if rq is not None:
                fmt = TensorFormat.of_range(rq.lo, rq.hi)
            else:                       # max pool, flatten, concat keep their codes
                fmt = out[layer.inputs[0]]
            out[layer.name] = self.tensors.get(layer.name, fmt)
        return out

    def validate(self) -> None:
        """Check every layer, the wiring of the DAG and every tensor's format."""
        check_name("bundle name", self.name)
        self.input.validate()
        if not isinstance(self.meta, dict):
            raise BundleError(f"bundle meta must be a JSON object, got {type(self.meta).__name__}")
        if not self.layers:
            raise BundleError("bundle has no layers")
        for name, spec in self.specs.items():
            family = get_family(name, BundleError, "macros")
            if name in MACRO_SPECS or family.spec is None or not isinstance(spec, family.spec):
                raise BundleError(f"macros.{name}: the family keeps no configuration here "
                                  f"(expected {'its own field' if name in MACRO_SPECS else family.spec})")
        check_graph(self.layers, self.input.shape)
        for layer in self.macro_layers:
            if layer.w_bits == 1:
                check_binary_blocks(f"layer {layer.name}", layer.matrix(), self.dcim.rows_on)
            family = get_family(layer.macro, BundleError)
            family.check_layer(self, layer)
            acc_max, why = family.acc_bound(self, layer)
            layer.requant.check_headroom(f"layer {layer.name}", acc_max, why)
        self._check_formats()

    def _check_formats(self) -> None:
        """Declared formats hold what their producers make; every macro layer's inputs
        fit its unsigned x_bits after the offset; concatenated tensors share a format."""
        names = {layer.name for layer in self.layers}
        for name in self.tensors:
            if name not in names:
                raise BundleError(f"tensors: {name!r} is not the output of a layer (the "
                                  "input's format is in 'input')")
        fmts = self.formats()
        for layer in self.layers:
            where = f"layer {layer.name}"
            fmt = fmts[layer.name]
            fmt.validate(f"tensors.{layer.name}")
            rq = getattr(layer, "requant", None)
            if rq is not None:
                lo, hi = fmt.codes
                if rq.lo < lo or rq.hi > hi:
                    raise BundleError(f"{where}: its codes span [{rq.lo}, {rq.hi}], outside "
                                      f"its tensor format's [{lo}, {hi}]")
            else:
                ins = [fmts[i] for i in layer.inputs]
                if any(replace(f, scale=None) != replace(fmt, scale=None) for f in ins):
                    raise BundleError(f"{where}: its inputs and output must share one integer "
                                      f"format, got {[f.to_dict() for f in ins]} -> "
                                      f"{fmt.to_dict()}")
            if isinstance(layer, MacroLayer):
                self._check_macro_input(layer, fmts[layer.inputs[0]], layer.inputs[0])
            elif rq is not None:
                _host_headroom(layer, [fmts[src] for src in layer.inputs])

    @staticmethod
    def _check_macro_input(layer: MacroLayer, fmt: TensorFormat, source: str) -> None:
        lo, hi = fmt.codes
        u_lo, u_hi = lo + fmt.offset, hi + fmt.offset
        source = "the input quantizer" if source == INPUT else f"layer {source}"
        if u_lo < 0 or u_hi > (1 << layer.x_bits) - 1:
            raise BundleError(
                f"layer {layer.name}: its inputs from {source} span [{lo}, {hi}], which "
                f"does not fit x_bits={layer.x_bits} (unsigned [0, {(1 << layer.x_bits) - 1}]"
                + (f" after the offset {fmt.offset}" if fmt.offset else "") + ")")
        if fmt.bipolar and layer.op == "conv2d" and layer.padding:
            raise BundleError(f"layer {layer.name}: zero padding of bipolar inputs has no "
                              "code (they are -1 or +1); use padding 0 or a signed input")


def _host_headroom(layer, fmts: list) -> None:
    """An average pool's or residual add's int64 requantizer cannot overflow on any
    codes of its inputs' formats (as the macro layers' check)."""
    peak = [max(abs(v) for v in f.codes) for f in fmts]
    channels = layer.requant.multiplier.shape[0]
    if isinstance(layer, AvgPoolLayer):
        acc = np.full(channels, layer.kernel[0] * layer.kernel[1] * peak[0], np.int64)
        layer.requant.check_headroom(f"layer {layer.name}", acc, "its window sums")
        return
    rq = layer.requant
    for n in range(channels):
        m_a, m_b = abs(int(rq.multiplier[n])), abs(int(layer.multiplier_b[n]))
        total = peak[0] * m_a + peak[1] * m_b + abs(int(rq.bias[n])) \
            + ((1 << (rq.shift - 1)) if rq.shift else 0)
        if total > INT64_MAX:
            raise BundleError(
                f"layer {layer.name}: the int64 requantizer overflows on channel {n}: "
                f"codes up to {peak[0]} and {peak[1]} with M = {m_a}, M_b = {m_b}, B = "
                f"{int(rq.bias[n])} reach {total} >= 2^63; re-import the model")


# ------------------------------------------------------------------------ save/load

def _check_values(where: str, arr: np.ndarray, lo: int, hi: int) -> None:
    if arr.size and (arr.min() < lo or arr.max() > hi):
        bad = int(arr.min()) if arr.min() < lo else int(arr.max())
        raise BundleError(f"{where} holds {bad}, out of the allowed range [{lo}, {hi}]")


def check_chain(layers: list, input_shape: tuple, error: type) -> None:
    """Layer names unique, each layer valid and taking the previous layer's output shape
    (``error`` is the exception to raise: BundleError for files, ConfigError for code)."""
    shape, names = tuple(input_shape), set()
    for i, layer in enumerate(layers):
        check_name(f"layers[{i}].name", layer.name, error)
        if layer.name in names:
            raise error(f"layer name {layer.name!r} is used twice")
        names.add(layer.name)
        if tuple(layer.in_shape) != shape:
            raise error(f"layer {layer.name} (#{i}) expects input {tuple(layer.in_shape)} but "
                        f"receives {shape}")
        layer.validate()
        shape = tuple(layer.out_shape)


def check_graph(layers: list, input_shape: tuple) -> None:
    """Layer names unique, every layer valid and reading the input or earlier layers'
    outputs of the shapes it expects, and every output but the last one read."""
    shapes, read = {INPUT: tuple(input_shape)}, set()
    for i, layer in enumerate(layers):
        check_name(f"layers[{i}].name", layer.name)
        if layer.name in shapes:
            raise BundleError(f"layer name {layer.name!r} is used twice" if layer.name != INPUT
                              else f"layers[{i}]: {INPUT!r} names the network's input; "
                              "rename the layer")
        arity = {"add": (2, 2), "concat": (2, 64)}.get(layer.op, (1, 1))
        if not isinstance(layer.inputs, tuple) or not arity[0] <= len(layer.inputs) <= arity[1] \
                or not all(isinstance(src, str) for src in layer.inputs):
            count = {"add": "2", "concat": "2 to 64"}.get(layer.op, "1")
            raise BundleError(f"layer {layer.name}: an {layer.op!r} node reads {count} "
                              f"tensor name(s), got inputs {layer.inputs!r}")
        for src in layer.inputs:
            if src not in shapes:
                raise BundleError(f"layer {layer.name} (#{i}) reads {src!r}, which is neither "
                                  f"{INPUT!r} nor an earlier layer")
        got = [shapes[src] for src in layer.inputs]
        want = ([tuple(s) for s in layer.in_shapes] if isinstance(layer, ConcatLayer)
                else [tuple(layer.in_shape)] * len(got))
        if len(want) != len(got):
            raise BundleError(f"layer {layer.name}: it reads {len(got)} tensors "
                              f"{list(layer.inputs)} but lists {len(want)} in_shapes")
        for src, g, w in zip(layer.inputs, got, want):
            if g != w:
                raise BundleError(f"layer {layer.name} (#{i}) expects input {w} but receives "
                                  f"{g}" + (f" from {src}" if len(got) > 1 else ""))
        layer.validate()
        shapes[layer.name] = tuple(layer.out_shape)
        read.update(layer.inputs)
    unread = [layer.name for layer in layers[:-1] if layer.name not in read]
    if unread:
        raise BundleError(f"the output of layer {unread[0]} is read by no layer; only the "
                          "last layer's output is the network's output")


def check_binary_blocks(where: str, w_mat: np.ndarray, rows_on: int,
                        error: type = BundleError) -> None:
    """Binary weights are {-1,+1}; a 0 may appear only as a whole pruned block of
    ``rows_on`` rows (the macro stores one bit per weight, so a lone 0 has no encoding:
    the bit-serial read would take it as -1, the exact product as 0)."""
    zeros = (w_mat == 0)
    if not zeros.any():
        return
    starts = np.arange(0, w_mat.shape[0], rows_on)
    sizes = np.diff(np.append(starts, w_mat.shape[0]))[:, None]
    counts = np.add.reduceat(zeros.astype(np.int64), starts, axis=0)
    mixed = np.argwhere((counts > 0) & (counts < sizes))
    if mixed.size:
        g, n = (int(v) for v in mixed[0])
        raise error(
            f"{where}.weight: binary layer has a 0 inside block (row group {g}, channel {n}); "
            f"w_bits=1 weights are {{-1,+1}} and only whole blocks of rows_on={rows_on} rows "
            "may be pruned to 0")


def _requant_json(layer) -> dict[str, Any]:
    rq = layer.requant
    return {"multiplier": f"{layer.name}.multiplier.npy", "bias": f"{layer.name}.bias.npy",
            "shift": rq.shift, "lo": rq.lo, "hi": rq.hi}


def _layer_to_json(layer: Layer) -> dict[str, Any]:
    d: dict[str, Any] = {"name": layer.name, "op": layer.op, "inputs": list(layer.inputs)}
    if isinstance(layer, ConcatLayer):
        d["in_shapes"] = [list(s) for s in layer.in_shapes]
    else:
        d["in_shape"] = list(layer.in_shape)
    d["out_shape"] = list(layer.out_shape)
    if isinstance(layer, MacroLayer):
        if layer.analog is not None:
            d["analog"] = {"gain": f"{layer.name}.gain.npy", "offset": f"{layer.name}.offset.npy",
                           "layer": int(layer.analog.layer)}
        d.update(macro=layer.macro, w_bits=layer.w_bits, x_bits=layer.x_bits,
                 stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                 groups=layer.groups, weight=f"{layer.name}.weight.npy",
                 weight_shape=list(layer.weight.shape), requant=_requant_json(layer))
        if layer.adc_bits is not None:
            d["adc_bits"] = layer.adc_bits
    elif isinstance(layer, PoolLayer):
        d.update(kernel=layer.kernel, stride=layer.stride)
    elif isinstance(layer, AvgPoolLayer):
        d.update(kernel=list(layer.kernel), stride=list(layer.stride),
                 requant=_requant_json(layer), rounding=layer.rounding)
    elif isinstance(layer, AddLayer):
        d.update(requant=_requant_json(layer), multiplier_b=f"{layer.name}.multiplier_b.npy",
                 rounding=layer.rounding)
    return d


def _layer_arrays(layer: Layer) -> dict[str, np.ndarray]:
    """The .npy arrays of a layer, by the part of their file name."""
    arrays = {}
    if isinstance(layer, MacroLayer):
        arrays["weight"] = layer.weight
        if layer.analog is not None:
            arrays.update(gain=np.asarray(layer.analog.gain, np.int64),
                          offset=np.asarray(layer.analog.offset, np.int64))
    if getattr(layer, "requant", None) is not None:
        arrays.update(multiplier=layer.requant.multiplier, bias=layer.requant.bias)
    if isinstance(layer, AddLayer):
        arrays["multiplier_b"] = layer.multiplier_b
    return arrays


def _bundle_doc(bundle: Bundle) -> dict:
    """bundle.json of ``bundle`` (validated)."""
    bundle.validate()
    formats = bundle.formats()
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "name": bundle.name,
           "input": {"shape": list(bundle.input.shape), "bits": bundle.input.bits,
                     "scale": bundle.input.scale, "signed": bundle.input.signed,
                     "offset": bundle.input.offset, "bipolar": bundle.input.bipolar,
                     "narrow": bundle.input.narrow},
           "macros": {"dcim": bundle.dcim.to_dict(),
                      **({"acim": bundle.acim.to_dict()} if bundle.acim else {}),
                      **{name: spec.to_dict() for name, spec in bundle.specs.items()}},
           "layers": [_layer_to_json(layer) for layer in bundle.layers],
           "tensors": {layer.name: formats[layer.name].to_dict() for layer in bundle.layers},
           "meta": bundle.meta}


def bundle_digest(bundle: Bundle) -> str:
    """A content hash of ``bundle``: its bundle.json and every array (dtype, shape,
    bytes), the same on any machine for the same bundle."""
    h = hashlib.sha256(json.dumps(_bundle_doc(bundle), sort_keys=True, default=jsonable).encode())
    for layer in bundle.layers:
        for part, arr in _layer_arrays(layer).items():
            arr = np.ascontiguousarray(arr)
            h.update(f"{layer.name}.{part}:{arr.dtype.str}:{arr.shape}".encode())
            h.update(arr.tobytes())
    return h.hexdigest()


def save_bundle(bundle: Bundle, path: str | os.PathLike, force: bool = False) -> Path:
    """Validate and write ``bundle`` to the folder ``path`` atomically (a folder that
    cimstack did not write is replaced only with ``force``)."""
    doc = _bundle_doc(bundle)
    with atomic_folder(path, force, kind="bundle") as tmp:
        for layer in bundle.layers:
            for part, arr in _layer_arrays(layer).items():
                np.save(tmp / f"{layer.name}.{part}.npy", arr, allow_pickle=False)
        (tmp / "bundle.json").write_text(json.dumps(doc, indent=2, default=jsonable) + "\n")
    return Path(path)


# the keys of schema 2; schema 1 has no "tensors", "signed", "inputs", "dilation", "groups",
# "adc_bits"
TOP_KEYS = ("schema", "schema_version", "name", "input", "macros", "layers", "tensors", "meta")
INPUT_KEYS = ("shape", "bits", "scale", "signed", "offset", "bipolar", "narrow")
LAYER_KEYS = ("name", "op", "inputs", "in_shape", "out_shape")
POOL_KEYS = LAYER_KEYS + ("kernel", "stride")
MACRO_LAYER_KEYS = LAYER_KEYS + ("macro", "w_bits", "x_bits", "stride", "padding", "dilation",
                                 "groups", "weight", "weight_shape", "requant", "analog",
                                 "adc_bits")
LAYER_KEYS_BY_OP = {
    "conv2d": MACRO_LAYER_KEYS, "linear": MACRO_LAYER_KEYS, "maxpool2d": POOL_KEYS,
    "flatten": LAYER_KEYS, "avgpool2d": POOL_KEYS + ("requant", "rounding"),
    "add": LAYER_KEYS + ("requant", "multiplier_b", "rounding"),
    "concat": ("name", "op", "inputs", "in_shapes", "out_shape")}
SCHEMA_2_ONLY = ("tensors", "signed", "offset", "bipolar", "narrow", "inputs", "dilation",
                 "groups", "adc_bits")
FORMAT_KEYS = ("bits", "signed", "bipolar", "scale")
REQUANT_KEYS = ("multiplier", "bias", "shift", "lo", "hi")
ANALOG_KEYS = ("gain", "offset", "layer")
FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")


def _unique_keys(pairs: list) -> dict:
    """``json.loads`` hook: a key given twice is an error (JSON would keep the last)."""
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"key {key!r} is given twice in one object")
        seen[key] = value
    return seen


def read_schema_doc(meta_file: Path, schema: str, version: int, what: str, hint: str,
                    oldest: int | None = None) -> dict:
    """The JSON document of a bundle folder, checked for its schema and version (any
    from ``oldest`` to ``version``)."""
    if not meta_file.is_file():
        raise BundleError(f"no {what} at {meta_file.parent}: {meta_file.name} is missing "
                          f"({hint})")
    bundle_file(meta_file.parent, meta_file.name, what)
    if meta_file.stat().st_size > MAX_JSON_BYTES:
        raise BundleError(f"{meta_file} is larger than {MAX_JSON_BYTES >> 20} MiB; a bundle's "
                          "JSON is small: it is not a bundle file")
    try:
        doc = json.loads(meta_file.read_text(), object_pairs_hook=_unique_keys)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BundleError(f"{meta_file} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != schema:
        raise BundleError(f"{meta_file} is not a {what} (schema field must be {schema!r})")
    oldest = version if oldest is None else oldest
    if type(doc.get("schema_version")) is not int \
            or not oldest <= doc["schema_version"] <= version:
        reads = f"version {version}" if oldest == version else f"versions {oldest} to {version}"
        raise BundleError(f"{meta_file}: schema_version {doc.get('schema_version')!r} is not "
                          f"supported; this cimstack reads {reads}: re-export it")
    return doc


def bundle_file(folder: Path, name: Any, where: str) -> Path:
    """``folder / name`` for a file the bundle JSON names: a plain file name, an existing
    regular file, and (through any symlink) inside the bundle folder."""
    if not isinstance(name, str) or not FILE_NAME.fullmatch(name):
        raise BundleError(f"{where}: array file name {name!r} must be a plain file name "
                          "inside the bundle folder")
    file = folder / name
    if not file.is_file():
        raise BundleError(f"{where}: array file {file} is missing (or not a regular file); "
                          "re-export the bundle")
    target = file.resolve()
    if folder.resolve() not in target.parents:
        raise BundleError(f"{where}: {file} is a symbolic link to {target}, outside the "
                          "bundle folder; copy the file into the bundle instead")
    return file


def load_array(folder: Path, name: Any, where: str, dtype: str, shape: tuple) -> np.ndarray:
    """An .npy array of a bundle folder (:func:`bundle_file`). Its header must declare
    ``dtype``, ``shape`` and exactly the bytes the file holds; this is checked before
    the data are read, so a damaged header cannot make NumPy allocate what it claims."""
    file = bundle_file(folder, name, where)
    try:
        with open(file, "rb") as fh:
            npy_version = np.lib.format.read_magic(fh)
            if npy_version not in ((1, 0), (2, 0)):
                raise ValueError(f".npy format version {npy_version} is not supported")
            read_header = (np.lib.format.read_array_header_1_0 if npy_version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            got_shape, _, got_dtype = read_header(fh)
            data_bytes = os.fstat(fh.fileno()).st_size - fh.tell()
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise BundleError(f"{where}: {file} is not a readable .npy array (truncated or "
                          f"corrupt?): {exc}") from None
    if got_dtype != np.dtype(dtype):
        raise BundleError(f"{where}: {file.name} has dtype {got_dtype}, expected {dtype}")
    if tuple(got_shape) != tuple(shape):
        raise BundleError(f"{where}: {file.name} has shape {tuple(got_shape)}, expected "
                          f"{tuple(shape)}")
    if data_bytes != math.prod(shape) * got_dtype.itemsize:
        raise BundleError(f"{where}: {file.name} holds {data_bytes} data bytes but its header "
                          f"declares {math.prod(shape) * got_dtype.itemsize} ({dtype} "
                          f"{tuple(shape)}): truncated or corrupt; re-export the bundle")
    try:
        return np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BundleError(f"{where}: {file} is not a readable .npy array (truncated or "
                          f"corrupt?): {exc}") from None


def check_object(d: Any, known: tuple | None, where: str) -> dict:
    """``d`` is a JSON object holding only ``known`` keys (any keys when ``known`` is
    None); unknown keys: :func:`cimstack.config.check_keys`."""
    if not isinstance(d, dict):
        raise BundleError(f"{where} must be a JSON object {{...}}, got {type(d).__name__}")
    if known is not None:
        check_keys(d, known, where, BundleError)
    return d


_TYPE_NAMES = {int: "an integer", str: "a string", list: "a list", dict: "a JSON object",
               float: "a number"}


def get_field(d: dict, key: str, where: str, kind: type | tuple = object) -> Any:
    """``d[key]``, with a clear error when it is missing or of the wrong type (a bool is
    never an int here, and a float never an int)."""
    if not isinstance(d, dict) or key not in d:
        raise BundleError(f"{where}: missing field {key!r}")
    value = d[key]
    if kind is not object and (not isinstance(value, kind) or isinstance(value, bool)):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        expected = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
        raise BundleError(f"{where}.{key} = {value!r} has the wrong type: expected {expected}")
    return value


def get_shape(d: dict, key: str, where: str) -> tuple:
    """A list of positive integers from ``d[key]``, as a tuple, of at most
    :data:`MAX_ELEMENTS` elements."""
    value = get_field(d, key, where, list)
    if not value or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                            for v in value):
        raise BundleError(f"{where}.{key} = {value!r} must be a list of positive integers")
    if math.prod(value) > MAX_ELEMENTS:
        raise BundleError(f"{where}.{key} = {value!r} declares {math.prod(value)} elements; "
                          f"a bundle shape holds at most {MAX_ELEMENTS}")
    return tuple(value)


def _requant_from_json(d: dict, folder: Path, where: str, channels: int) -> Requant:
    rq = check_object(get_field(d, "requant", where), REQUANT_KEYS, where + ".requant")
    return Requant(
        multiplier=load_array(folder, get_field(rq, "multiplier", where), where, "int64",
                              (channels,)),
        bias=load_array(folder, get_field(rq, "bias", where), where, "int64", (channels,)),
        shift=get_field(rq, "shift", where + ".requant", int),
        lo=get_field(rq, "lo", where + ".requant", int),
        hi=get_field(rq, "hi", where + ".requant", int))


def _pair(d: dict, key: str, where: str) -> tuple:
    value = get_field(d, key, where, list)
    if len(value) != 2 or not all(type(v) is int for v in value):
        raise BundleError(f"{where}.{key} = {value!r} must be a pair of integers [h, w]")
    return tuple(value)


def _layer_from_json(d: Any, folder: Path, i: int, version: int) -> Layer:
    where = f"bundle.json layers[{i}]"
    check_object(d, None, where)
    name = get_field(d, "name", where, str)
    where = f"layer {name}"
    op = get_field(d, "op", where, str)
    if op not in LAYER_KEYS_BY_OP:
        raise BundleError(f"{where}: unknown op {op!r}; known: {', '.join(LAYER_KEYS_BY_OP)}")
    keys = LAYER_KEYS_BY_OP[op]
    if version == 1:
        keys = tuple(k for k in keys if k not in SCHEMA_2_ONLY)
    check_object(d, keys, where)
    inputs = ()
    if version > 1:
        inputs = get_field(d, "inputs", where, list)
        if not all(isinstance(src, str) for src in inputs):
            raise BundleError(f"{where}.inputs = {inputs!r} must be a list of tensor names")
        inputs = tuple(inputs)
    out_shape = get_shape(d, "out_shape", where)
    if op == "concat":
        shapes = get_field(d, "in_shapes", where, list)
        in_shapes = tuple(get_shape({"in_shape": s}, "in_shape", f"{where}.in_shapes")
                          for s in shapes)
        return ConcatLayer(name, in_shapes, out_shape, inputs=inputs)
    in_shape = get_shape(d, "in_shape", where)
    if op == "flatten":
        return FlattenLayer(name, in_shape, out_shape, inputs=inputs)
    if op == "maxpool2d":
        return PoolLayer(name, in_shape, out_shape, kernel=get_field(d, "kernel", where, int),
                         stride=get_field(d, "stride", where, int), inputs=inputs)
    channels = in_shape[0]
    if op == "avgpool2d":
        return AvgPoolLayer(name, in_shape, out_shape, kernel=_pair(d, "kernel", where),
                            stride=_pair(d, "stride", where),
                            requant=_requant_from_json(d, folder, where, channels),
                            inputs=inputs, rounding=get_field(d, "rounding", where, str))
    if op == "add":
        return AddLayer(name, in_shape, out_shape,
                        requant=_requant_from_json(d, folder, where, channels),
                        multiplier_b=load_array(folder, get_field(d, "multiplier_b", where),
                                                where, "int64", (channels,)),
                        inputs=inputs, rounding=get_field(d, "rounding", where, str))
    wshape = get_shape(d, "weight_shape", where)
    channels = wshape[0]
    requant = _requant_from_json(d, folder, where, channels)
    analog = None
    if "analog" in d:
        an = check_object(get_field(d, "analog", where), ANALOG_KEYS, where + ".analog")
        analog = AcimLayerParams(
            gain=load_array(folder, get_field(an, "gain", where + ".analog"), where, "int64",
                             (channels,)),
            offset=load_array(folder, get_field(an, "offset", where + ".analog"), where, "int64",
                               (channels,)),
            layer=get_field(an, "layer", where + ".analog", int))
    return MacroLayer(
        name=name, op=op, analog=analog,
        weight=load_array(folder, get_field(d, "weight", where), where, "int8", wshape),
        w_bits=get_field(d, "w_bits", where, int), x_bits=get_field(d, "x_bits", where, int),
        requant=requant, in_shape=in_shape, out_shape=out_shape,
        stride=get_field(d, "stride", where, int), padding=get_field(d, "padding", where, int),
        dilation=get_field(d, "dilation", where, int) if version > 1 else 1,
        groups=get_field(d, "groups", where, int) if version > 1 else 1,
        macro=get_field(d, "macro", where, str), inputs=inputs,
        adc_bits=get_field(d, "adc_bits", where, int) if "adc_bits" in d else None)


def _formats_from_json(doc: dict) -> dict[str, TensorFormat]:
    tensors = check_object(get_field(doc, "tensors", "bundle.json"), None, "tensors")
    out = {}
    for name, f in tensors.items():
        where = f"tensors.{name}"
        check_object(f, FORMAT_KEYS, where)
        scale = get_field(f, "scale", where)
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float))):
            raise BundleError(f"{where}.scale = {scale!r} must be a number or null")
        out[name] = TensorFormat(bits=get_field(f, "bits", where, int),
                                 signed=get_field(f, "signed", where),
                                 bipolar=get_field(f, "bipolar", where), scale=scale)
    return out


def _plugin_spec(name: str, value: Any):
    """``macros.<name>`` of a registered plug-in family with a spec class."""
    return get_family(name, BundleError, "macros").spec.from_dict(value, where=f"macros.{name}")


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read and validate a bundle folder (or its bundle.json)."""
    folder = Path(path)
    if folder.name == "bundle.json":
        folder = folder.parent
    meta_file = folder / "bundle.json"
    doc = read_schema_doc(meta_file, SCHEMA, SCHEMA_VERSION, "cimstack bundle",
                          "export one with `cimstack export` or `cimstack train`", oldest=1)
    version = doc["schema_version"]
    old = SCHEMA_2_ONLY if version == 1 else ()
    check_object(doc, tuple(k for k in TOP_KEYS if k not in old), "bundle.json")
    inp = check_object(get_field(doc, "input", "bundle.json"),
                       tuple(k for k in INPUT_KEYS if k not in old), "input")
    plugins = tuple(n for n in family_names() if n not in MACRO_SPECS and get_family(n).spec)
    macros = check_object(get_field(doc, "macros", "bundle.json"), MACRO_SPECS + plugins,
                          "macros")
    try:
        dcim = DcimSpec.from_dict(get_field(macros, "dcim", "macros", dict), where="macros.dcim")
        acim = (AcimSpec.from_dict(get_field(macros, "acim", "macros", dict), where="macros.acim")
                if "acim" in macros else None)
        specs = {name: _plugin_spec(name, value) for name, value in macros.items()
                 if name not in MACRO_SPECS}
    except ConfigError as exc:
        raise BundleError(f"{meta_file}: {exc}") from None
    layers_doc = get_field(doc, "layers", "bundle.json", list)
    bundle = Bundle(
        name=get_field(doc, "name", "bundle.json", str),
        input=InputSpec(get_shape(inp, "shape", "input"), get_field(inp, "bits", "input", int),
                        get_field(inp, "scale", "input", (int, float)),
                        **({key: get_field(inp, key, "input") for key in
                            ("signed", "offset", "bipolar", "narrow")} if version > 1
                           else {})),
        layers=[_layer_from_json(d, folder, i, version) for i, d in enumerate(layers_doc)],
        dcim=dcim, meta=doc.get("meta", {}), acim=acim, specs=specs,
        tensors=_formats_from_json(doc) if version > 1 else {})
    bundle.validate()
    return bundle
