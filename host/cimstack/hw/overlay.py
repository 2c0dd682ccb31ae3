"""The cimstack overlay as a pynq.Overlay, with a runner per macro kernel slot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pynq

from ..bundle import Bundle, MacroLayer
from ..errors import ConfigError
from ..families import get_family
from ..overlay_shape import check_handoff, overlay_shape
from .macros import AcimIP, AcimRunner, DcimIP, DcimRunner, MacroRunner
from .snn import SnnIP        # imported so that pynq binds the snn kernel to it by VLNV

__all__ = ["CimOverlay", "DcimIP", "AcimIP", "SnnIP"]

RUNNERS = {"dcim": DcimRunner, "acim": AcimRunner}


class CimOverlay(pynq.Overlay):
    """``pynq.Overlay`` of the cimstack bitstream (board) or its emulation.

    IP names and addresses come from ``overlay_shape``; each kernel binds to its driver
    (:class:`DcimIP`, :class:`AcimIP`, :class:`SnnIP`) by VLNV, its DMA to pynq's unmodified
    ``pynq.lib.dma.DMA``.
    """

    def __init__(self, bitfile: str | Path, board: str = "pynq-z2", download: bool = True,
                 **kwargs):
        check_handoff(bitfile, board)        # one clear line before pynq parses the .hwh
        super().__init__(str(bitfile), download=download, **kwargs)
        self.shape = overlay_shape(board)

    def runner(self, kernel: str = "dcim", timeout_s: float = 10.0) -> MacroRunner:
        """The runner of the slot holding ``kernel`` (dcim or acim)."""
        slot = self.shape.slot(kernel)
        return RUNNERS[kernel](getattr(self, slot.ip_name), getattr(self, slot.dma.name),
                               timeout_s=timeout_s)

    def macro_engine(self, timeout_s: float = 10.0) -> "MacroEngine":
        """One engine for whole networks: each layer goes to its macro's kernel."""
        return MacroEngine({k: self.runner(k, timeout_s) for k in RUNNERS
                            if any(s.kernel.name == k for s in self.shape.slots)})


class MacroEngine:
    """Dispatches each macro layer to the runner of its macro family."""

    def __init__(self, runners: dict[str, MacroRunner]):
        self.runners = runners

    def __call__(self, layer: MacroLayer, x_mat: np.ndarray, bundle: Bundle) -> np.ndarray:
        kernel = get_family(layer.macro).kernel
        if kernel is None:
            raise ConfigError(f"layer {layer.name}: macro family {layer.macro} has no FPGA "
                              "kernel; run it on the reference backend")
        runner = self.runners.get(kernel)
        if runner is None:
            raise ConfigError(f"layer {layer.name} needs the {kernel} kernel, which this "
                              f"overlay does not have (it has {sorted(self.runners)})")
        return runner.engine(layer, x_mat, bundle)

    def stage_times(self) -> dict:
        """Stage seconds, calls, items and weight loads summed over the kernels."""
        out = {"seconds": {}, "calls": 0, "items": 0, "weight_loads": 0,
               "weight_load_bytes": 0, "total_s": 0.0}
        for runner in self.runners.values():
            t = runner.times.to_dict()
            for stage, sec in t["seconds"].items():
                out["seconds"][stage] = out["seconds"].get(stage, 0.0) + sec
            for key in ("calls", "items", "weight_loads", "weight_load_bytes", "total_s"):
                out[key] += t[key]
        return out
