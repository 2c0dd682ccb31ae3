"""The built-in macro families, dcim (digital bit-serial, MARS) and acim (analog charge
domain, IMAGINE), declared as :class:`~cimstack.families.MacroFamily` records and
registered when ``cimstack`` is imported.

Each record only points at the family's own modules (``ref/dcim.py``, ``cost/acim.py``,
...); the rules a bundle layer of the family must follow are here, next to the record.
"""

from __future__ import annotations

import numpy as np

from .bundle import Bundle, MacroLayer
from .config import AcimSpec, DcimSpec
from .cost.acim import acim_layer as acim_layer_cost
from .cost.constants import AcimConstants, DcimConstants
from .cost.dcim import dcim_layer as dcim_layer_cost
from .cost.fpga import acim_slice_cycles, dcim_slice_cycles
from .errors import BundleError, ConfigError
from .families import MacroFamily, register_family
from .mapping.mars import network_map
from .mapping.tiling import LayerCost, acim_cost, layer_cost
from .ref.dcim import macro_conv, macro_matmul
from .ref.requant import code_type, requantize
from .sweep.points import AcimPoint, DcimPoint
from .sweep.tasks import train_acim, train_dcim

# --------------------------------------------------------------------------- dcim

def _dcim_check(bundle: Bundle, layer: MacroLayer) -> None:
    if layer.analog is not None or layer.adc_bits is not None:
        raise BundleError(f"layer {layer.name}: a dcim layer has no analog parameters (gain, "
                          "offset, noise key, adc_bits belong to acim layers)")


def _dcim_acc_bound(bundle: Bundle, layer: MacroLayer) -> tuple[np.ndarray, str]:
    """Exact accumulators: ``sum_k |w[n,k]| * (2^x_bits - 1)`` per channel."""
    x_max = (1 << layer.x_bits) - 1
    acc_max = np.abs(layer.matrix().astype(np.int64)).sum(axis=0) * x_max
    return acc_max, (f"K = {layer.k} inputs up to {x_max} times weights up to "
                     f"{int(np.abs(layer.weight.astype(np.int64)).max(initial=0))}")


def _dcim_reference(layer: MacroLayer, x_mat: np.ndarray, bundle: Bundle) -> np.ndarray:
    rq = layer.requant
    acc = macro_matmul(x_mat, layer.matrix(), layer.w_bits, layer.x_bits, bundle.dcim,
                       as_float=True)
    return requantize(acc, rq.multiplier, rq.bias, rq.shift, rq.lo, rq.hi)


def _dcim_reference_conv(layer: MacroLayer, x: np.ndarray, pad_value: int,
                         bundle: Bundle) -> np.ndarray:
    rq = layer.requant
    code = code_type(rq.lo, rq.hi)
    return macro_conv(x, layer, bundle.dcim, pad_value, then=lambda acc: requantize(
        acc, rq.multiplier, rq.bias, rq.shift, rq.lo, rq.hi, dtype=code))


def _dcim_cycles(layer: MacroLayer, bundle: Bundle) -> LayerCost:
    return layer_cost(layer.matrix(), layer.w_bits, layer.x_bits, bundle.dcim)


DCIM = MacroFamily(
    name="dcim", summary="digital bit-serial SRAM CIM (MARS)", spec=DcimSpec,
    check_layer=_dcim_check, acc_bound=_dcim_acc_bound, reference=_dcim_reference,
    cycles=_dcim_cycles, cost_constants=DcimConstants,
    layer_cost=lambda layer, st, bundle, c, reload, batch, lmap: dcim_layer_cost(
        layer, st, bundle.dcim, c, reload, batch, lmap),
    resident_tiles=lambda bundle: bundle.dcim.total_macros,
    area_mm2=lambda bundle, c: bundle.dcim.total_macros * c.macro_area_mm2,
    kernel="dcim", fpga_slice=dcim_slice_cycles, trainer=train_dcim, point=DcimPoint,
    network_map=network_map, reference_conv=_dcim_reference_conv)


# --------------------------------------------------------------------------- acim

def _acim_spec(bundle: Bundle, layer: MacroLayer, error: type = ConfigError) -> AcimSpec:
    """The analog macro configuration ``layer`` runs under (:meth:`Bundle.acim_for`: the
    bundle's, with the layer's own ADC bits); an acim layer cannot run without one."""
    if bundle.acim is None:
        raise error(f"bundle {bundle.name} runs acim layers but has no acim configuration "
                    "(macros.acim); re-export it")
    return bundle.acim_for(layer)


def _acim_check(bundle: Bundle, layer: MacroLayer) -> None:
    where = f"layer {layer.name}"
    if layer.analog is None:
        raise BundleError(f"{where}: an acim layer needs its analog parameters (gain, offset, "
                          "noise key)")
    spec = _acim_spec(bundle, layer, BundleError)
    if layer.k > spec.rows:
        raise BundleError(f"{where}: K = {layer.k} inputs exceed the acim array's "
                          f"{spec.rows} rows")
    try:
        layer.analog.validate(spec, layer.channels, where=f"{where}.analog")
    except ConfigError as exc:
        raise BundleError(str(exc)) from None


def _acim_acc_bound(bundle: Bundle, layer: MacroLayer) -> tuple[np.ndarray, str]:
    """The requantizer sees ADC codes: at most ``2^adc_bits - 1``."""
    top = (1 << _acim_spec(bundle, layer, BundleError).adc_bits) - 1
    return np.full(layer.channels, top), f"ADC codes up to {top}"


def _acim_reference(layer: MacroLayer, x_mat: np.ndarray, bundle: Bundle) -> np.ndarray:
    from .ref.acim import acim_layer  # loads numba: only when an acim layer runs
    return acim_layer(x_mat, layer.matrix(), layer.w_bits, layer.x_bits,
                      _acim_spec(bundle, layer), layer.analog, layer.requant)


def _acim_cycles(layer: MacroLayer, bundle: Bundle) -> LayerCost:
    return acim_cost(layer.k, layer.channels, layer.w_bits, layer.x_bits,
                     _acim_spec(bundle, layer))


ACIM = MacroFamily(
    name="acim", summary="analog charge-domain CIM with in-ADC batch-norm (IMAGINE)",
    spec=AcimSpec, check_layer=_acim_check, acc_bound=_acim_acc_bound,
    reference=_acim_reference, cycles=_acim_cycles, cost_constants=AcimConstants,
    layer_cost=lambda layer, st, bundle, c, reload, batch: acim_layer_cost(
        layer, st, _acim_spec(bundle, layer), c, reload, batch),
    resident_tiles=lambda bundle: 1,                 # one array
    area_mm2=lambda bundle, c: c.macro_area_mm2,
    kernel="acim", fpga_slice=acim_slice_cycles, trainer=train_acim, point=AcimPoint)


register_family(DCIM)
register_family(ACIM)
