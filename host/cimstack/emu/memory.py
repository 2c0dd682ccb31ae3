"""The PS DDR as the PL sees it, with the contiguous-memory allocator behind
``pynq.allocate``.

Hardware facts modelled:

- ``pynq.allocate`` returns physically contiguous, page-aligned buffers (the kernel's
  CMA pool); the DMA masters see their physical address through the HP port.
- A *cacheable* buffer lives twice: in the CPU's data cache (the ndarray the user
  touches) and in DDR (what the DMA reads and writes). ``flush`` writes the CPU copy
  back to DDR, ``invalidate`` drops it so the CPU re-reads DDR. A driver that forgets
  either gets the wrong data, here as on the board.
- A non-cacheable buffer (pynq's default, ``cacheable=False``) is mapped uncached:
  CPU stores go straight to DDR, so the two copies are one array.

The model only backs allocated buffers. A DMA access outside every buffer would hit
whatever the OS keeps there on the board; here it is refused (the DMA model reports a
slave error), which turns a silent memory corruption into a visible one.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

PAGE = 4096


class MemoryFault(Exception):
    """An access the DDR model refuses; ``kind`` is "slave" (inside DDR, no buffer)
    or "decode" (no memory at that address)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(eq=False)
class Region:
    """One buffer from the allocator: ``mem`` is DDR, ``cpu`` the CPU's view of it
    (the same array when the buffer is not cacheable)."""

    phys: int
    nbytes: int
    cacheable: bool
    mem: np.ndarray = field(repr=False)
    cpu: np.ndarray = field(repr=False)
    freed: bool = False

    @property
    def end(self) -> int:
        return self.phys + self.nbytes


class DdrModel:
    """DDR window ``[base, base + size)`` with a first-fit page allocator.

    Buffers are placed from ``pool_base`` up (by default the upper half of DDR,
    where the PYNQ images put their CMA pool), so physical addresses look like the
    board's and are never 0.
    """

    def __init__(self, base: int, size: int, pool_base: int | None = None):
        self.base = base
        self.size = size
        self.pool_base = pool_base if pool_base is not None else base + size // 2
        self._starts: list[int] = []      # sorted physical starts of live regions
        self._regions: list[Region] = []

    # ------------------------------------------------------------ allocation
    def allocate(self, nbytes: int, cacheable: bool) -> Region:
        """A new zero-filled region of at least ``nbytes`` bytes, page aligned."""
        span = max(PAGE, -(-nbytes // PAGE) * PAGE)
        addr = self.pool_base
        for region in self._regions:
            if addr + span <= region.phys:
                break
            addr = max(addr, -(-region.end // PAGE) * PAGE)
        if addr + span > self.base + self.size:
            raise MemoryError(
                f"emulated DDR pool exhausted: cannot place {nbytes} bytes "
                f"({len(self._regions)} buffers live); free buffers you no longer use")
        mem = np.zeros(max(nbytes, 1), dtype=np.uint8)
        cpu = np.zeros_like(mem) if cacheable else mem
        region = Region(addr, nbytes, cacheable, mem, cpu)
        i = bisect.bisect(self._starts, addr)
        self._starts.insert(i, addr)
        self._regions.insert(i, region)
        return region

    def return_pointer(self, region: Region) -> None:
        """Free ``region`` (pynq's PynqBuffer calls this when the buffer dies)."""
        if region.freed:
            return
        i = bisect.bisect_left(self._starts, region.phys)
        if i < len(self._regions) and self._regions[i] is region:
            del self._starts[i]
            del self._regions[i]
        region.freed = True

    free = return_pointer

    def reset(self) -> None:
        """Forget every buffer (a new device state; live ndarrays keep their data)."""
        for region in self._regions:
            region.freed = True
        self._starts.clear()
        self._regions.clear()

    @property
    def live(self) -> list[Region]:
        return list(self._regions)

    # --------------------------------------------------------- cache control
    @staticmethod
    def flush(region: Region, offset: int, nbytes: int) -> None:
        """CPU cache -> DDR for ``[offset, offset + nbytes)`` of ``region``."""
        if region.cacheable:
            region.mem[offset:offset + nbytes] = region.cpu[offset:offset + nbytes]

    @staticmethod
    def invalidate(region: Region, offset: int, nbytes: int) -> None:
        """DDR -> CPU view for ``[offset, offset + nbytes)`` of ``region``."""
        if region.cacheable:
            region.cpu[offset:offset + nbytes] = region.mem[offset:offset + nbytes]

    # ----------------------------------------------------- bus-master access
    def contains(self, addr: int) -> bool:
        return self.base <= addr < self.base + self.size

    def locate(self, addr: int, nbytes: int) -> tuple[Region, int]:
        """The region holding ``[addr, addr + nbytes)`` and the offset into it."""
        if not (self.contains(addr) and addr + nbytes <= self.base + self.size):
            raise MemoryFault("decode", f"address range 0x{addr:08X}+{nbytes} is outside "
                              f"DDR [0x{self.base:08X}, 0x{self.base + self.size:08X})")
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0:
            region = self._regions[i]
            if addr + nbytes <= region.end:
                return region, addr - region.phys
            if addr < region.end:
                raise MemoryFault("slave", (
                    f"address range 0x{addr:08X}+{nbytes} runs past the end of the "
                    f"{region.nbytes}-byte buffer at 0x{region.phys:08X}"))
        raise MemoryFault("slave", (
            f"address 0x{addr:08X} is not inside any buffer from pynq.allocate "
            "(freed buffer or wrong address?); on the board this would read or "
            "overwrite unrelated memory"))

    def read(self, addr: int, nbytes: int) -> np.ndarray:
        """DDR bytes (a copy) as seen by a bus master."""
        region, off = self.locate(addr, nbytes)
        return region.mem[off:off + nbytes].copy()

    def write(self, addr: int, data: np.ndarray | bytes) -> None:
        """Store bytes into DDR as a bus master (the CPU cache is not updated)."""
        buf = np.frombuffer(bytes(data), np.uint8) if isinstance(data, (bytes, bytearray)) \
            else np.asarray(data, np.uint8).reshape(-1)
        region, off = self.locate(addr, buf.size)
        region.mem[off:off + buf.size] = buf
