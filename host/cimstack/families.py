"""The registry of macro families: one :class:`MacroFamily` record per family, found
by the name a bundle layer gives in its ``macro`` field.

Every module that behaves differently per family (bundle validation, the reference
executor, the cycle and cost models, the FPGA estimate, the sweep) asks
:func:`get_family` for the layer's record instead of testing the name, so an unknown
name is one clear error and a new family is one :func:`register_family` call, from any
module, without editing this package. The built-in families (dcim, acim) are declared
in :mod:`cimstack.builtin_families` and registered when ``cimstack`` is imported.

This module imports nothing of cimstack but its errors: the bundle (the lowest layer)
reads the registry, while the records' functions come from the layers above.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class MacroFamily:
    """What cimstack needs to know about one family of CIM macros.

    The functions receive a :class:`~cimstack.bundle.MacroLayer` ``layer`` and its
    :class:`~cimstack.bundle.Bundle` ``bundle``; a family keeps its configuration in the
    bundle (``bundle.dcim``, ``bundle.acim``) or has none.
    """

    name: str
    summary: str                 # one line: what the macro is (errors, docs)
    spec: type | None            # its configuration class (bundle.json ``macros.<name>``)
    # bundle validation: raise BundleError when ``layer`` breaks the family's rules
    check_layer: Callable[[Any, Any], None]
    # (largest |accumulator| into the requantizer per channel, why): int64 headroom check
    acc_bound: Callable[[Any, Any], tuple]
    # reference engine: [V, K] unsigned inputs -> [V, N] requantized int64 outputs
    reference: Callable[[Any, Any, Any], Any]
    # cycle model per input vector: an object with tiles, cycles, dense_cycles, blocks,
    # pruned_blocks (:class:`cimstack.mapping.tiling.LayerCost`)
    cycles: Callable[[Any, Any], Any]
    # cost model: the constants class (default-constructed unless given), the per-layer
    # cost (layer, LayerStats, bundle, constants, reload, batch) -> dict with the keys of
    # cimstack.cost.network.SUMMED, the tiles its macros hold at once, its area (mm^2)
    cost_constants: type
    layer_cost: Callable[..., dict]
    resident_tiles: Callable[[Any], int]
    area_mm2: Callable[[Any, Any], float]
    # overlay driver: the kernel's name in overlay_shape.KERNELS and hw.overlay.RUNNERS,
    # and its FPGA cycle model (layer, bundle, c0, n, FpgaTiming) -> (cycles per input
    # vector, load cycles, extra weight-stream words); None: no FPGA kernel
    kernel: str | None = None
    fpga_slice: Callable[..., tuple] | None = None
    # sweep: trainer hook (model knobs, schedule) -> exported Bundle, and the design
    # point class (cimstack.sweep.points.Point) whose ``apply`` sets the evaluation knobs
    trainer: Callable[[dict, dict], Any] | None = None
    point: type | None = None
    # cost: the family's network-level mapping (bundle, resident) -> {layer name: map},
    # each layer's map handed to layer_cost as a seventh argument; None: six arguments
    network_map: Callable[[Any, bool], dict] | None = None
    # reference of a conv layer straight from its [B, C, H, W] unsigned codes and padding
    # code (layer, x, pad_value, bundle) -> [B*Ho*Wo, N] requantized codes of any integer
    # type, the same integers as ``reference`` on the lowered inputs (it may skip the
    # lowering to macro vectors); None: the reference lowers and calls ``reference``
    reference_conv: Callable[[Any, Any, int, Any], Any] | None = None


_FAMILIES: dict[str, MacroFamily] = {}


def register_family(family: MacroFamily) -> MacroFamily:
    """Add ``family`` to the registry (a name may be registered once)."""
    if family.name in _FAMILIES:
        raise ConfigError(f"macro family {family.name!r} is already registered; "
                          "unregister_family it first or pick another name")
    _FAMILIES[family.name] = family
    return family


def unregister_family(name: str) -> None:
    """Remove the family ``name`` (tests that register a toy family clean up with it)."""
    get_family(name)
    del _FAMILIES[name]


def family_names() -> tuple[str, ...]:
    """Names of the registered families, in registration order."""
    return tuple(_FAMILIES)


def get_family(name: str, error: type = ConfigError, where: str = "") -> MacroFamily:
    """The family registered as ``name``; else ``error`` (ConfigError, or BundleError for
    a bundle) naming ``where`` (e.g. the layer), the unknown family and the registered
    ones."""
    family = _FAMILIES.get(name) if isinstance(name, str) else None
    if family is None:
        raise error(f"{where}{': ' if where else ''}macro family {name!r} is not registered; "
                    "the registered families are "
                    f"{', '.join(_FAMILIES) or 'none'} (a new family is added with "
                    "cimstack.families.register_family)")
    return family
