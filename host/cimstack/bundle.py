"""The model bundle: what a trained network becomes for the reference, the emulated
overlay and the board. Plain ``.npy`` arrays and one JSON file; no torch, no pickle.

Layout of a bundle folder::

    bundle.json            schema, input quantizer, macro configuration, layers in order
    <layer>.weight.npy     int8 weights, torch layout [N, C, kh, kw] or [N, K]
    <layer>.multiplier.npy int64 requantizer multipliers M_n (within int32)
    <layer>.bias.npy       int64 requantizer biases B_n

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

import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Union

import numpy as np

from .config import AcimLayerParams, AcimSpec, DcimSpec, check_keys, check_range
from .errors import BundleError, ConfigError
from .families import get_family
from .fileio import atomic_folder, jsonable

SCHEMA = "cimstack-bundle"
SCHEMA_VERSION = 1
MACRO_SPECS = ("dcim", "acim")     # the macro configurations a bundle holds (``macros``)
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

    @property
    def channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def k(self) -> int:
        """Matrix rows: inputs per output (C*kh*kw for conv)."""
        return int(np.prod(self.weight.shape[1:]))

    @property
    def vectors(self) -> int:
        """Matrix-vector products per image: the output pixels of a conv, 1 for linear."""
        return int(np.prod(self.out_shape[1:])) if self.op == "conv2d" else 1

    def matrix(self) -> np.ndarray:
        """The K x N weight matrix, row k = c*kh*kw + ky*kw + kx."""
        return self.weight.reshape(self.channels, -1).T

    def validate(self) -> None:
        where = f"layer {self.name}"
        if self.op not in ("conv2d", "linear"):
            raise BundleError(f"{where}: op {self.op!r} is not a macro op (conv2d, linear)")
        get_family(self.macro, BundleError, where)
        _in_range(f"{where}.w_bits", self.w_bits, 1, 8)
        _in_range(f"{where}.x_bits", self.x_bits, 1, 8)
        _in_range(f"{where}.stride", self.stride, 1, 64)
        _in_range(f"{where}.padding", self.padding, 0, 64)
        ndim = 4 if self.op == "conv2d" else 2
        if not isinstance(self.weight, np.ndarray) or self.weight.dtype != np.int8 \
                or self.weight.ndim != ndim:
            raise BundleError(
                f"{where}.weight must be an int8 array with {ndim} dimensions, got "
                f"{getattr(self.weight, 'dtype', type(self.weight).__name__)} "
                f"{getattr(self.weight, 'shape', '')}")
        _check_values(f"{where}.weight", self.weight, *weight_range(self.w_bits))
        in_c = self.in_shape[0]
        if self.op == "conv2d" and (len(self.in_shape) != 3 or self.weight.shape[1] != in_c):
            raise BundleError(f"{where}: weight {self.weight.shape} does not fit input "
                              f"shape {self.in_shape}")
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
        kh, kw = self.weight.shape[2:]
        ho = (h + 2 * self.padding - kh) // self.stride + 1
        wo = (w + 2 * self.padding - kw) // self.stride + 1
        return (self.channels, ho, wo)


@dataclass
class PoolLayer:
    """Integer max pooling on the host (commutes with the monotone requantizer)."""

    name: str
    in_shape: tuple
    out_shape: tuple
    kernel: int = 2
    stride: int = 2
    op: str = "maxpool2d"

    def validate(self) -> None:
        where = f"layer {self.name}"
        if self.op != "maxpool2d":
            raise BundleError(f"{where}: op {self.op!r} is not a pool op (maxpool2d)")
        _in_range(f"{where}.kernel", self.kernel, 1, 64)
        _in_range(f"{where}.stride", self.stride, 1, 64)
        if len(self.in_shape) != 3:
            raise BundleError(f"{where}: max pooling needs a (C, H, W) input, got "
                              f"{tuple(self.in_shape)}")
        c, h, w = self.in_shape
        expect = (c, (h - self.kernel) // self.stride + 1, (w - self.kernel) // self.stride + 1)
        if tuple(self.out_shape) != expect:
            raise BundleError(f"layer {self.name}: out_shape {tuple(self.out_shape)} does not "
                              f"match the computed {expect}")


@dataclass
class FlattenLayer:
    """(C, H, W) -> (C*H*W,) in C, H, W order (as torch.flatten)."""

    name: str
    in_shape: tuple
    out_shape: tuple
    op: str = "flatten"

    def validate(self) -> None:
        size = math.prod(self.in_shape)          # exact (np.prod wraps past 2^63)
        if tuple(self.out_shape) != (size,):
            raise BundleError(f"layer {self.name}: flatten of {tuple(self.in_shape)} gives "
                              f"({size},), not {tuple(self.out_shape)}")


Layer = Union[MacroLayer, PoolLayer, FlattenLayer]


@dataclass
class InputSpec:
    """Input quantizer: ``x_int = clip(round_half_even(x / scale), 0, 2^bits - 1)``."""

    shape: tuple
    bits: int
    scale: float

    def validate(self) -> None:
        _in_range("input.bits", self.bits, 1, 8)
        lo, hi = SCALE_RANGE
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) \
                or not lo <= self.scale <= hi:                  # False for NaN too
            raise BundleError(
                f"input.scale = {self.scale!r} must be a positive normal float32 number in "
                f"[{lo:.7g}, {hi:.7g}]: the input quantizer computes x / scale in float32, "
                "where a smaller (subnormal) scale saturates every input")


@dataclass
class Bundle:
    """A network ready for the macros: integer weights, requantizers, macro config."""

    name: str
    input: InputSpec
    layers: list
    dcim: DcimSpec = field(default_factory=DcimSpec)
    meta: dict = field(default_factory=dict)
    acim: AcimSpec | None = None              # the analog macro, when a layer uses it

    @property
    def macro_layers(self) -> list[MacroLayer]:
        return [layer for layer in self.layers if isinstance(layer, MacroLayer)]

    def with_acim(self, **changes) -> "Bundle":
        """The same model under other analog-macro settings (noise level, seed, mode)."""
        return replace(self, acim=replace(self.acim, **changes))

    def validate(self) -> None:
        """Check every layer and that shapes chain from the input to the output."""
        check_name("bundle name", self.name)
        self.input.validate()
        if not isinstance(self.meta, dict):
            raise BundleError(f"bundle meta must be a JSON object, got {type(self.meta).__name__}")
        if not self.layers:
            raise BundleError("bundle has no layers")
        check_chain(self.layers, self.input.shape, BundleError)
        for layer in self.macro_layers:
            if layer.w_bits == 1:
                check_binary_blocks(f"layer {layer.name}", layer.matrix(), self.dcim.rows_on)
            family = get_family(layer.macro, BundleError)
            family.check_layer(self, layer)
            acc_max, why = family.acc_bound(self, layer)
            layer.requant.check_headroom(f"layer {layer.name}", acc_max, why)
        self._check_value_ranges()

    def _check_value_ranges(self) -> None:
        """Every macro layer's inputs must fit its unsigned x_bits."""
        lo, hi, source = 0, (1 << self.input.bits) - 1, "the input quantizer"
        for layer in self.layers:
            if not isinstance(layer, MacroLayer):
                continue
            if lo < 0 or hi > (1 << layer.x_bits) - 1:
                raise BundleError(
                    f"layer {layer.name}: its inputs from {source} span [{lo}, {hi}], which "
                    f"does not fit x_bits={layer.x_bits} (unsigned [0, {(1 << layer.x_bits) - 1}])")
            lo, hi, source = layer.requant.lo, layer.requant.hi, f"layer {layer.name}"


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


def _layer_to_json(layer: Layer) -> dict[str, Any]:
    d: dict[str, Any] = {"name": layer.name, "op": layer.op,
                         "in_shape": list(layer.in_shape), "out_shape": list(layer.out_shape)}
    if isinstance(layer, MacroLayer):
        if layer.analog is not None:
            d["analog"] = {"gain": f"{layer.name}.gain.npy", "offset": f"{layer.name}.offset.npy",
                           "layer": int(layer.analog.layer)}
        d.update(macro=layer.macro, w_bits=layer.w_bits, x_bits=layer.x_bits,
                 stride=layer.stride, padding=layer.padding,
                 weight=f"{layer.name}.weight.npy", weight_shape=list(layer.weight.shape),
                 requant={"multiplier": f"{layer.name}.multiplier.npy",
                          "bias": f"{layer.name}.bias.npy", "shift": layer.requant.shift,
                          "lo": layer.requant.lo, "hi": layer.requant.hi})
    elif isinstance(layer, PoolLayer):
        d.update(kernel=layer.kernel, stride=layer.stride)
    return d


def save_bundle(bundle: Bundle, path: str | os.PathLike, force: bool = False) -> Path:
    """Validate and write ``bundle`` to the folder ``path`` atomically (a folder that
    cimstack did not write is replaced only with ``force``)."""
    bundle.validate()
    doc = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "name": bundle.name,
           "input": {"shape": list(bundle.input.shape), "bits": bundle.input.bits,
                     "scale": bundle.input.scale},
           "macros": {"dcim": bundle.dcim.to_dict(),
                      **({"acim": bundle.acim.to_dict()} if bundle.acim else {})},
           "layers": [_layer_to_json(layer) for layer in bundle.layers],
           "meta": bundle.meta}
    with atomic_folder(path, force, kind="bundle") as tmp:
        for layer in bundle.macro_layers:
            arrays = {"weight": layer.weight, "multiplier": layer.requant.multiplier,
                      "bias": layer.requant.bias}
            if layer.analog is not None:
                arrays.update(gain=np.asarray(layer.analog.gain, np.int64),
                              offset=np.asarray(layer.analog.offset, np.int64))
            for part, arr in arrays.items():
                np.save(tmp / f"{layer.name}.{part}.npy", arr, allow_pickle=False)
        (tmp / "bundle.json").write_text(json.dumps(doc, indent=2, default=jsonable) + "\n")
    return Path(path)


TOP_KEYS = ("schema", "schema_version", "name", "input", "macros", "layers", "meta")
INPUT_KEYS = ("shape", "bits", "scale")
LAYER_KEYS = ("name", "op", "in_shape", "out_shape")
POOL_KEYS = LAYER_KEYS + ("kernel", "stride")
MACRO_LAYER_KEYS = LAYER_KEYS + ("macro", "w_bits", "x_bits", "stride", "padding", "weight",
                                 "weight_shape", "requant", "analog")
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


def read_schema_doc(meta_file: Path, schema: str, version: int, what: str, hint: str) -> dict:
    """The JSON document of a bundle folder, checked for its schema and version."""
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
    if type(doc.get("schema_version")) is not int or doc["schema_version"] != version:
        raise BundleError(f"{meta_file}: schema_version {doc.get('schema_version')!r} is not "
                          f"supported; this cimstack reads version {version}: re-export it")
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


def _layer_from_json(d: Any, folder: Path, i: int) -> Layer:
    where = f"bundle.json layers[{i}]"
    check_object(d, None, where)
    name = get_field(d, "name", where, str)
    where = f"layer {name}"
    op = get_field(d, "op", where, str)
    if op not in ("conv2d", "linear", "maxpool2d", "flatten"):
        raise BundleError(f"{where}: unknown op {op!r}; known: conv2d, linear, maxpool2d, flatten")
    check_object(d, {"flatten": LAYER_KEYS, "maxpool2d": POOL_KEYS}.get(op, MACRO_LAYER_KEYS),
                 where)
    in_shape, out_shape = get_shape(d, "in_shape", where), get_shape(d, "out_shape", where)
    if op == "flatten":
        return FlattenLayer(name, in_shape, out_shape)
    if op == "maxpool2d":
        return PoolLayer(name, in_shape, out_shape, kernel=get_field(d, "kernel", where, int),
                         stride=get_field(d, "stride", where, int))
    wshape = get_shape(d, "weight_shape", where)
    rq = check_object(get_field(d, "requant", where), REQUANT_KEYS, where + ".requant")
    channels = wshape[0]
    requant = Requant(
        multiplier=load_array(folder, get_field(rq, "multiplier", where), where, "int64", (channels,)),
        bias=load_array(folder, get_field(rq, "bias", where), where, "int64", (channels,)),
        shift=get_field(rq, "shift", where + ".requant", int), lo=get_field(rq, "lo", where + ".requant", int),
        hi=get_field(rq, "hi", where + ".requant", int))
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
        macro=get_field(d, "macro", where, str))


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read and validate a bundle folder (or its bundle.json)."""
    folder = Path(path)
    if folder.name == "bundle.json":
        folder = folder.parent
    meta_file = folder / "bundle.json"
    doc = read_schema_doc(meta_file, SCHEMA, SCHEMA_VERSION, "cimstack bundle",
                          "export one with `cimstack export` or `cimstack train`")
    check_object(doc, TOP_KEYS, "bundle.json")
    inp = check_object(get_field(doc, "input", "bundle.json"), INPUT_KEYS, "input")
    macros = check_object(get_field(doc, "macros", "bundle.json"), MACRO_SPECS, "macros")
    try:
        dcim = DcimSpec.from_dict(get_field(macros, "dcim", "macros", dict), where="macros.dcim")
        acim = (AcimSpec.from_dict(get_field(macros, "acim", "macros", dict), where="macros.acim")
                if "acim" in macros else None)
    except ConfigError as exc:
        raise BundleError(f"{meta_file}: {exc}") from None
    layers_doc = get_field(doc, "layers", "bundle.json", list)
    bundle = Bundle(
        name=get_field(doc, "name", "bundle.json", str),
        input=InputSpec(get_shape(inp, "shape", "input"), get_field(inp, "bits", "input", int),
                        get_field(inp, "scale", "input", (int, float))),
        layers=[_layer_from_json(d, folder, i) for i, d in enumerate(layers_doc)],
        dcim=dcim, meta=doc.get("meta", {}), acim=acim)
    bundle.validate()
    return bundle
