"""IMAGINE's channel-wise array split: which row segments a layer activates on the
analog macro, and the ADC bits adaptive swing recovers (docs/macros.md, "Analog CIM
macro (acim)", "Channel-wise split").

The array's ``rows`` are cut into ``segments`` equal segments of ``S = rows / segments``
rows. A layer's rows are placed channel-major (row ``k = c*A + ky*kw + kx``, ``A = kh*kw``
the kernel area, 1 for linear layers) and each input channel's A rows stay inside one
segment, so a segment holds ``floor(S / A)`` channels and a layer of C input channels
activates ``ceil(C / floor(S / A))`` segments. Adaptive swing normalizes by the active
segments' rows, ``N_norm = active segments * S``; fixed swing by the whole array.

The dot product does not depend on where the rows sit; the placement matters through
N_norm and through whether the layer fits. The reference and the acim kernel compute
``N_norm = ceil(K / S) * S`` (:meth:`cimstack.config.AcimSpec.norm_rows`): rows packed
without regard to channels. That is the channel-aligned N_norm whenever A divides S (the
default 144-row segments with 1x1, 2x2, 3x3 and 4x4 kernels, and linear layers). A
layer for which the two differ (for example 5x5 kernels on 144-row segments), or whose
aligned placement needs more segments than the array has, is refused where layers are
mapped (:func:`check_channel_split`, called by the QONNX import and by the analog
training), so reference and kernel never run a layer whose aligned N_norm they would not
compute. Bundles record their ``AcimSpec``: one written with other segments (the former
default 9 of 128 rows) loads and runs with the N_norm it was written with.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from ..config import AcimSpec
from ..errors import ConfigError


@dataclass(frozen=True)
class ChannelSplit:
    """One layer on the split array. ``segments`` and ``norm_adaptive`` are the
    channel-aligned placement's; ``packed_segments`` is ``ceil(K / S)``, what the
    reference and kernel normalize by. ``problem`` is empty when the layer maps."""

    layer: str
    channels: int            # C: input channels (all groups)
    area: int                # A: kernel area kh * kw (1 for linear layers)
    k: int                   # K = C * A rows
    seg_rows: int            # S: rows per segment
    per_segment: int         # channels per segment, floor(S / A)
    segments: int            # active segments, ceil(C / per_segment) (0: A > S)
    packed_segments: int     # ceil(K / S)
    norm_fixed: int          # N_norm with fixed swing: the whole array
    norm_adaptive: int       # N_norm with adaptive swing: segments * S
    end_rows: int            # rows left empty at the end of every segment, S - per_segment * A
    idle_rows: int           # rows of the active segments that hold no weight, N_norm - K
    bits_recovered: float    # log2(norm_fixed / norm_adaptive) (0 when it does not map)
    problem: str             # why the layer cannot map ("" when it maps)

    @property
    def maps(self) -> bool:
        return not self.problem

    def to_dict(self) -> dict:
        return {**asdict(self), "maps": self.maps}


def channel_split(spec: AcimSpec, channels: int, area: int, layer: str = "") -> ChannelSplit:
    """The channel-aligned split of a layer with ``channels`` input channels of kernel
    area ``area`` on ``spec``'s array (module docstring)."""
    if channels < 1 or area < 1:
        raise ConfigError(f"layer {layer}: channels = {channels} and kernel area = {area} "
                          "must be at least 1")
    s, k = spec.seg_rows, channels * area
    per = s // area
    segs = -(-channels // per) if per else 0
    packed = -(-k // s)
    problem = ""
    if k > spec.rows:
        problem = f"K = {k} > {spec.rows} rows"
    elif per == 0:
        problem = f"{area}-row channels > {s}-row segments"
    elif segs > spec.segments:
        problem = f"needs {segs} of {spec.segments} segments"
    elif segs != packed and spec.swing == "adaptive":
        problem = f"{segs} segments, kernel normalizes by {packed}"
    norm = segs * s if segs else spec.rows
    return ChannelSplit(
        layer=layer, channels=channels, area=area, k=k, seg_rows=s, per_segment=per,
        segments=segs, packed_segments=packed, norm_fixed=spec.rows, norm_adaptive=norm,
        end_rows=s - per * area if per else s, idle_rows=norm - k if segs else 0,
        bits_recovered=math.log2(spec.rows / norm) if not problem else 0.0, problem=problem)


def kernel_area(layer) -> int:
    """A = kh * kw of a conv2d :class:`~cimstack.bundle.MacroLayer`, 1 for linear."""
    return int(layer.weight.shape[2] * layer.weight.shape[3]) if layer.op == "conv2d" else 1


def layer_split(spec: AcimSpec, layer) -> ChannelSplit:
    """:func:`channel_split` of a :class:`~cimstack.bundle.MacroLayer`."""
    area = kernel_area(layer)
    return channel_split(spec, layer.k // area, area, layer.name)


def mapping_segments(spec: AcimSpec, channels: int, area: int) -> int | None:
    """The most segments (finest split) up to ``spec.segments`` that map the layer,
    keeping the other knobs; None when none does (K > rows)."""
    for n in range(spec.segments, 0, -1):
        if spec.rows % n == 0 and channel_split(replace(spec, segments=n), channels, area).maps:
            return n
    return None


def check_channel_split(spec: AcimSpec, split: ChannelSplit) -> None:
    """Raise :class:`ConfigError` (one line, with the segments that would map it) unless
    the layer of ``split`` (:func:`channel_split` on ``spec``) maps channel-aligned."""
    if split.maps:
        return
    fix = mapping_segments(spec, split.channels, split.area)
    hint = f"use --set segments={fix} or" if fix else "reduce its inputs or use"
    raise ConfigError(
        f"layer {split.layer}: {split.channels} input channels of {split.area} rows fit "
        f"{split.per_segment} to a {split.seg_rows}-row segment (no channel cut by a segment "
        f"end): {split.problem}; {hint} --macro dcim")


def split_plan(layers, spec: AcimSpec) -> list[ChannelSplit]:
    """:func:`layer_split` of every macro layer (conv2d, linear) among ``layers``."""
    return [layer_split(spec, layer) for layer in layers
            if getattr(layer, "op", None) in ("conv2d", "linear")]


def split_rows(plan: list[ChannelSplit]) -> list[list[str]]:
    """Text cells of :data:`SPLIT_COLUMNS` per layer."""
    return [[p.layer, str(p.channels), str(p.area), str(p.k),
             f"{p.segments} x {p.seg_rows}" if p.segments else "-", str(p.end_rows),
             str(p.norm_fixed), str(p.norm_adaptive) if p.maps else "-",
             f"{p.bits_recovered:.2f}" if p.maps else "-", p.problem or "maps"]
            for p in plan]


SPLIT_COLUMNS = ("layer", "C", "A", "K", "active segments", "end rows", "N_norm fixed",
                 "N_norm adaptive", "bits recovered", "mapping")
