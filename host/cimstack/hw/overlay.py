"""The cimstack overlay as a pynq.Overlay, with one runner per kernel slot."""

from __future__ import annotations

from pathlib import Path

import pynq

from ..overlay_shape import overlay_shape
from .dcim import DcimIP, DcimRunner

__all__ = ["CimOverlay", "DcimIP"]


class CimOverlay(pynq.Overlay):
    """``pynq.Overlay`` of the cimstack bitstream (board) or its emulation.

    IP names and addresses come from ``overlay_shape``; the dcim kernel binds to
    :class:`DcimIP` by VLNV, its DMA to pynq's unmodified ``pynq.lib.dma.DMA``.
    """

    def __init__(self, bitfile: str | Path, board: str = "pynq-z2", download: bool = True,
                 **kwargs):
        super().__init__(str(bitfile), download=download, **kwargs)
        self.shape = overlay_shape(board)

    def runner(self, kernel: str = "dcim", timeout_s: float = 10.0) -> DcimRunner:
        """A :class:`DcimRunner` on the slot of ``kernel``."""
        slot = self.shape.slot(kernel)
        return DcimRunner(getattr(self, slot.ip_name), getattr(self, slot.dma.name),
                          timeout_s=timeout_s)
