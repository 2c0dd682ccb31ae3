"""Per-layer sensitivity of a graph bundle: the accuracy change when only one macro
layer is changed, measured on the integer reference (the engine of
``cimstack run --backend reference``) with labelled images.

Five changes per macro layer, each applied to that layer alone:

- ``acim``: the layer moved to the analog macro at the study's noise and ADC bits.
  Its requantizer ``y = round_half_up(acc*M/2^s + B/2^s)`` becomes the ABN of the ADC,
  ``G = m*FS/h``, ``beta = c - h`` with ``m = M/2^s``, ``c = B/2^s``
  (:func:`cimstack.importer.analog_map.map_analog`, output scale one code), so the
  analog layer computes the same function up to the ABN's fixed-point rounding, the
  ADC's clipping and the noise. A hidden layer's codes must be unsigned and fit the ADC
  (``[0, hi]``, ``hi <= 2^adc_bits - 1``); the logits layer (the last macro layer, only
  flattens after it) gets the importer's logits mapping (its codes centred on ``h``).
- ``w_bits``: integer weights re-quantized to fewer bits without a Brevitas source:
  ``w' = clip((w + 2^(d-1)) >> d)`` (round half up, as the macros' requantizer),
  ``d = w_bits - w_bits'``, ``w_bits' >= 2`` (binary weights are not a rounding of
  wider ones). A dcim layer's accumulator shrinks by ``2^d``, so its requantizer's
  ``M`` is multiplied by ``2^d`` (or, when that leaves int32, its shift lowered by
  ``d`` and ``B`` rounded to ``B / 2^d``); an acim layer needs no correction, since its
  swing ``FS`` holds ``2^(w_bits-1)`` and shrinks by the same ``2^d``.
- ``x_bits``: the layer reads ``x_bits'`` bit inputs. When its input tensor has more
  bits ``t > x_bits'``, the producer's codes are rounded to ``t - d`` bits,
  ``d = t - x_bits'``: a macro producer's requantizer shift grows by ``d`` (one
  rounding of the exact value, half up, not a second rounding), the input quantizer's
  scale doubles ``d`` times. Every macro layer that reads those codes (through max
  pools and flattens) then sees accumulators ``2^d`` smaller: dcim readers get ``M``
  times ``2^d`` as above, acim readers the ABN gain times ``2^d * (2^x_new - 1) /
  (2^x_old - 1)`` (their swing holds ``2^x_bits - 1``). Codes that also reach an add,
  average pool or concat, and signed or bipolar codes, are not lowered.
- ``sparsity``: a dcim layer's integer weights block-pruned to a block sparsity (default
  its own plus :data:`SPARSITY_STEP`), the way the macro skips blocks (docs/macros.md):
  a block is ``rows_on`` rows of one output channel of the matrix ``W[K, N]``, and in
  every row tile of the bundle's ``DcimSpec.rows`` rows every channel zeroes its
  ``min(T - 1, floor(sparsity * T + 1/2))`` blocks of smallest L2 norm (ties: the lower
  group; :func:`cimstack.mapping.tiling.balanced_block_keep`, the rule of
  ``quant/prune.py``). Blocks already zero count first, so none is un-pruned; the other
  weights and the requantizer stay, and the cost model skips the zero blocks (fewer
  cycles, less array and read-out energy). An acim layer is refused: the analog macro
  converts every active row, zero or not. So is a grouped conv (its block-diagonal
  matrix is zero blocks already) and a sparsity that zeroes no further block.
- ``adc_bits``: an acim layer's ADC at ``a' = a - d`` bits (default one less than its
  own; a dcim layer has no ADC and no entry). The ADC's codes get ``2^d`` times
  coarser: ``h' = h / 2^d`` with the same gain ``G`` and the offset ``beta / 2^d``
  (``o' = (o + 2^(d-1)) >> d`` in its fixed-point format), so ``code' ~ code / 2^d``;
  the layer's requantizer on the codes takes ``M * 2^d`` (as for ``w_bits``), so its
  output keeps its scale and format and no reader changes. The noise stays ``sigma``
  LSB of the (now coarser) ADC; the cost model prices the smaller ADC.

A change the layer cannot take (already analog, does not fit the array, a gain outside
the ABN format, ...) is reported with the reason instead of an accuracy. The noise
(``sigma``) is bundle-wide: it applies to the layers already on acim too, so the
baseline is measured under it as well.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np

from ..bundle import (INPUT, INT32, Bundle, FlattenLayer, MacroLayer, PoolLayer, Requant,
                      TensorFormat, weight_range)
from ..config import AcimSpec, knob_bounds
from ..errors import CimstackError, ConfigError
from ..importer.analog_map import map_analog
from ..mapping.tiling import balanced_block_keep, kept_blocks
from ..ref.network import integer_accuracy

CHANGES = ("acim", "w_bits", "x_bits", "sparsity", "adc_bits")
SPARSITY_STEP = 0.25          # the default raise of a layer's block sparsity
SPARSITY_DIGITS = 6           # block sparsities are rounded to this many decimals
CODE_NODES = (PoolLayer, FlattenLayer)        # host nodes that pass codes on unchanged
Progress = Callable[[str], None]


@dataclass(frozen=True)
class LayerChange:
    """One layer under one change: the accuracy of the bundle with only that change,
    ``delta = accuracy - baseline`` (a drop is negative); ``accuracy`` and ``delta``
    are None and ``note`` says why when the layer cannot take the change."""

    layer: str
    change: str               # one of CHANGES
    value: int | float        # the new adc_bits (acim, adc_bits), w_bits, x_bits or sparsity
    accuracy: float | None
    delta: float | None
    note: str = ""


@dataclass
class Sensitivity:
    """The study's result: the baseline and one :class:`LayerChange` per macro layer and
    change, in layer order."""

    bundle: str
    images: int
    source: str               # where the labelled images came from
    sigma: float              # the analog noise of every acim layer (LSB)
    adc_bits: int             # ADC bits of a layer moved to acim
    baseline: float
    changes: list[LayerChange] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {**asdict(self), "changes": [asdict(c) for c in self.changes]}


# ------------------------------------------------------------------ changing one layer

def _replace_layer(bundle: Bundle, layer: MacroLayer, **changes) -> Bundle:
    layers = [replace(node, **changes) if node is layer else node for node in bundle.layers]
    return replace(bundle, layers=layers)


def _is_logits(bundle: Bundle, layer: MacroLayer) -> bool:
    """``layer`` makes the network's output: only flattens follow it."""
    after = bundle.layers[bundle.layers.index(layer) + 1:]
    return all(isinstance(node, FlattenLayer) for node in after)


def to_acim(bundle: Bundle, name: str, spec: AcimSpec, adc_bits: int | None = None) -> Bundle:
    """``bundle`` (under the analog configuration ``spec``) with the dcim layer ``name``
    moved to acim with ``adc_bits`` ADC bits (None: the spec's); ConfigError when it
    cannot be (module docstring)."""
    layer = _macro(bundle, name)
    if layer.macro != "dcim":
        raise ConfigError(f"layer {name} is already on {layer.macro}")
    layer_spec = spec if adc_bits is None else replace(spec, adc_bits=adc_bits)
    rq = layer.requant
    logits = _is_logits(bundle, layer)
    if not logits and rq.lo != 0:
        raise ConfigError(f"layer {name}: its codes start at {rq.lo}; the ADC's start at 0")
    moved = replace(layer, weight=layer.weight.copy(),
                    adc_bits=None if adc_bits in (None, spec.adc_bits) else adc_bits)
    unit = 2.0 ** rq.shift
    s_o = map_analog(moved, rq.multiplier / unit, rq.bias / unit, None if logits else 1.0,
                     None if logits else rq.hi, layer_spec, bundle.layers.index(layer))
    out = replace(_replace_layer(bundle, layer, **{k: getattr(moved, k) for k in (
        "weight", "macro", "analog", "requant", "adc_bits")}), acim=spec)
    if logits and name in bundle.tensors:       # logit codes now 1/s_o of the old ones
        old = bundle.tensors[name].scale
        wide = TensorFormat(32, signed=True, scale=None if old is None else old * s_o)
        out = replace(out, tensors={**bundle.tensors, name: wide})
    out.validate()
    return out


def _scale_acc(rq: Requant, d: int, where: str) -> Requant:
    """The requantizer of an accumulator ``2^d`` times smaller: ``M * 2^d`` while it fits
    int32, else the shift lowered by ``d`` and ``B`` rounded to ``B / 2^d``."""
    if int(np.abs(rq.multiplier).max(initial=0)) << d < INT32[1]:
        return replace(rq, multiplier=rq.multiplier << d)
    if rq.shift >= d:
        return replace(rq, shift=rq.shift - d, bias=(rq.bias + (1 << (d - 1))) >> d)
    raise ConfigError(f"{where}: no int32 requantizer multiplier takes 2^{d} more")


def lower_w_bits(bundle: Bundle, name: str, bits: int) -> Bundle:
    """``bundle`` with layer ``name``'s weights re-quantized to ``bits`` (module
    docstring)."""
    layer = _macro(bundle, name)
    d = layer.w_bits - bits
    if d <= 0 or bits < 2:
        raise ConfigError(f"layer {name}: its w_bits {layer.w_bits} cannot be lowered to "
                          f"{bits} (2 <= new w_bits < w_bits: binary weights are not a "
                          "rounding of wider ones)")
    lo, hi = weight_range(bits)
    weight = np.clip((layer.weight.astype(np.int16) + (1 << (d - 1))) >> d, lo, hi)
    rq = layer.requant if layer.macro == "acim" else _scale_acc(layer.requant, d,
                                                                  f"layer {name}")
    out = _replace_layer(bundle, layer, weight=weight.astype(np.int8), w_bits=bits,
                         requant=rq)
    out.validate()
    return out


def lower_adc_bits(bundle: Bundle, name: str, bits: int) -> Bundle:
    """``bundle`` with the acim layer ``name``'s ADC at ``bits`` bits (module docstring)."""
    layer = _macro(bundle, name)
    if layer.macro != "acim":
        raise ConfigError(f"layer {name} is on {layer.macro}, which has no ADC; move it to "
                          "acim first")
    adc = bundle.acim_for(layer).adc_bits
    d = adc - bits
    lowest, _ = knob_bounds(AcimSpec, "adc_bits")
    if d <= 0 or bits < lowest:
        raise ConfigError(f"layer {name}: its {adc}-bit ADC cannot be lowered to {bits} bits "
                          f"({lowest} <= new adc_bits < {adc})")
    offset = (np.asarray(layer.analog.offset, np.int64) + (1 << (d - 1))) >> d
    out = _replace_layer(bundle, layer, adc_bits=bits,
                         analog=replace(layer.analog, offset=offset),
                         requant=_scale_acc(layer.requant, d, f"layer {name}"))
    out.validate()
    return out


def block_sparsity(bundle: Bundle, layer: MacroLayer) -> float:
    """The fraction of ``layer``'s blocks (``rows_on`` rows of one output channel, the
    bundle's ``DcimSpec``) whose weights are all zero, rounded to
    :data:`SPARSITY_DIGITS` decimals."""
    kept = kept_blocks(layer.matrix(), bundle.dcim.rows_on)
    return round(1.0 - float(kept.sum()) / kept.size, SPARSITY_DIGITS)


def prune_layer(bundle: Bundle, name: str, sparsity: float) -> Bundle:
    """``bundle`` with the dcim layer ``name``'s weights block-pruned to ``sparsity``
    (module docstring); ConfigError when the layer cannot take it."""
    layer = _macro(bundle, name)
    if layer.macro != "dcim":
        raise ConfigError(f"layer {name} is on {layer.macro}, which computes every row and "
                          "skips no zero block; prune a dcim layer")
    if layer.groups != 1:
        raise ConfigError(f"layer {name} is a grouped conv: its matrix is mostly zero "
                          "blocks already; prune an ungrouped layer")
    spec = bundle.dcim
    w2 = layer.weight.reshape(layer.channels, -1)
    keep = balanced_block_keep(w2, spec.rows_on, sparsity, spec.rows)
    mask = np.repeat(keep, spec.rows_on, axis=1)[:, :w2.shape[1]]
    weight = np.where(mask, w2, 0).astype(np.int8).reshape(layer.weight.shape)
    if np.array_equal(weight, layer.weight):
        raise ConfigError(f"layer {name}: block sparsity {sparsity:g} zeroes no further "
                          f"block (it has {block_sparsity(bundle, layer):g}; every channel "
                          "keeps one block per row tile); give a higher one")
    out = _replace_layer(bundle, layer, weight=weight)
    out.validate()
    return out


def _source(bundle: Bundle, tensor: str) -> str:
    """The node that made the codes of ``tensor`` (through max pools and flattens), or
    ``"input"``."""
    nodes = {node.name: node for node in bundle.layers}
    while tensor != INPUT and isinstance(nodes[tensor], CODE_NODES):
        tensor = nodes[tensor].inputs[0]
    return tensor


def _readers(bundle: Bundle, source: str) -> tuple[list[MacroLayer], set[str]]:
    """The macro layers that read the codes ``source`` makes, and the tensors that hold
    those codes (``source`` and the max pools and flattens on the way); ConfigError when
    another node (add, average pool, concat) or the network's output reads them too."""
    passing, readers = {source}, []
    for node in bundle.layers:
        if not passing.intersection(node.inputs):
            continue
        if isinstance(node, MacroLayer):
            readers.append(node)
        elif isinstance(node, CODE_NODES):
            passing.add(node.name)
        else:
            raise ConfigError(f"the codes of {source} also reach the {node.op} {node.name}")
    if passing & {bundle.output}:
        raise ConfigError(f"the codes of {source} are also the network's output")
    return readers, passing


def lower_x_bits(bundle: Bundle, name: str, bits: int) -> Bundle:
    """``bundle`` with layer ``name`` reading ``bits``-bit inputs (module docstring)."""
    layer = _macro(bundle, name)
    if not 1 <= bits < layer.x_bits:
        raise ConfigError(f"layer {name}: its x_bits {layer.x_bits} cannot be lowered to "
                          f"{bits} (1 <= new x_bits < x_bits)")
    source = _source(bundle, layer.inputs[0])
    fmt = bundle.formats()[source]
    d = fmt.bits - bits
    if d <= 0:                                  # its codes already fit
        out = _replace_layer(bundle, layer, x_bits=bits)
        out.validate()
        return out
    if fmt.signed or fmt.bipolar:
        raise ConfigError(f"layer {name}: its input codes are signed or bipolar")
    changed = {}
    readers, passing = _readers(bundle, source)
    for reader in readers:
        new_x = bits if reader is layer else reader.x_bits
        if reader.macro == "acim":
            g = np.round(reader.analog.gain * (2.0 ** d * ((1 << new_x) - 1)
                                               / ((1 << reader.x_bits) - 1))).astype(np.int64)
            changed[reader.name] = dict(x_bits=new_x, analog=replace(reader.analog, gain=g))
        else:
            changed[reader.name] = dict(x_bits=new_x, requant=_scale_acc(
                reader.requant, d, f"layer {reader.name}"))
    tensors = {name: replace(f, bits=bits, scale=None if f.scale is None else f.scale * 2**d)
               if name in passing else f for name, f in bundle.tensors.items()}
    if source == INPUT:
        out = replace(bundle, input=replace(bundle.input, bits=bits,
                                            scale=bundle.input.scale * 2 ** d))
    else:
        producer = _macro(bundle, source)
        rq = producer.requant
        changed[source] = dict(requant=replace(rq, shift=rq.shift + d, lo=rq.lo >> d,
                                               hi=min((rq.hi + (1 << (d - 1))) >> d,
                                                      (1 << bits) - 1)))
        out = bundle
    out = replace(out, tensors=tensors, layers=[
        replace(node, **changed[node.name]) if node.name in changed else node
        for node in out.layers])
    out.validate()
    return out


def _macro(bundle: Bundle, name: str) -> MacroLayer:
    for layer in bundle.macro_layers:
        if layer.name == name:
            return layer
    raise ConfigError(f"bundle {bundle.name} has no macro layer {name!r}; its macro layers "
                      f"are {', '.join(layer.name for layer in bundle.macro_layers)}")


# ------------------------------------------------------------------------- the study

def sensitivity(bundle: Bundle, images: np.ndarray, labels: np.ndarray, *,
                source: str = "", sigma: float | None = None, adc_bits: int | None = None,
                w_bits: int | None = None, x_bits: int | None = None,
                sparsity: float | None = None, lowered_adc_bits: int | None = None,
                changes: tuple = CHANGES, progress: Progress | None = None) -> Sensitivity:
    """Per macro layer and change (:data:`CHANGES`), the accuracy of ``bundle`` with only
    that change on ``images`` / ``labels`` and its difference from the baseline.

    ``sigma``, ``adc_bits``: the analog noise and the ADC bits of a moved layer (None:
    the bundle's ``AcimSpec``, or the default one); ``w_bits``, ``x_bits``,
    ``lowered_adc_bits``: the lowered precisions (None: one bit less than each layer's;
    the ADC of acim layers only); ``sparsity``: the raised block sparsity (None: each
    layer's plus :data:`SPARSITY_STEP`)."""
    unknown = set(changes) - set(CHANGES)
    if unknown or not changes:
        raise ConfigError(f"changes {sorted(unknown) or '(none)'}: choose from "
                          f"{', '.join(CHANGES)}")
    spec = bundle.acim or AcimSpec()
    spec = spec if sigma is None else replace(spec, sigma=sigma)
    base = replace(bundle, acim=spec) if bundle.acim is not None else bundle
    adc = spec.adc_bits if adc_bits is None else adc_bits
    result = Sensitivity(bundle.name, len(images), source, spec.sigma, adc,
                         integer_accuracy(base, images, labels))
    for layer in bundle.macro_layers:
        for change in changes:
            if change == "adc_bits" and layer.macro != "acim":
                continue                            # no ADC: no entry
            if progress:
                progress(f"{layer.name}: {change}")
            value = {"acim": adc,
                     "w_bits": layer.w_bits - 1 if w_bits is None else w_bits,
                     "x_bits": layer.x_bits - 1 if x_bits is None else x_bits,
                     "sparsity": round(block_sparsity(base, layer) + SPARSITY_STEP,
                                       SPARSITY_DIGITS) if sparsity is None else sparsity,
                     "adc_bits": lowered_adc_bits if lowered_adc_bits is not None else
                     base.acim_for(layer).adc_bits - 1 if layer.macro == "acim" else None,
                     }[change]
            try:
                changed = (to_acim(base, layer.name, spec, adc) if change == "acim" else
                           lower_w_bits(base, layer.name, value) if change == "w_bits" else
                           lower_x_bits(base, layer.name, value) if change == "x_bits" else
                           lower_adc_bits(base, layer.name, value) if change == "adc_bits"
                           else prune_layer(base, layer.name, value))
            except CimstackError as exc:
                result.changes.append(LayerChange(layer.name, change, value, None, None,
                                                  str(exc)))
                continue
            acc = integer_accuracy(changed, images, labels)
            result.changes.append(LayerChange(layer.name, change, value, acc,
                                              acc - result.baseline))
    return result
