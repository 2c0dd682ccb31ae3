"""A software Zynq-7000 registered with pynq as a ``pynq.Device``.

With it, ``pynq.Overlay``, ``pynq.allocate``, ``pynq.MMIO``, ``pynq.Clocks`` and the
unmodified ``pynq.lib.dma.DMA`` driver run without a board. What pynq asks of a device
(read from pynq 3.1.2 and 4.0.0):

- registration: a ``Device`` subclass defining ``_probe_`` and ``_probe_priority_`` is
  recorded by pynq's ``DeviceMeta``; ``Device.devices`` probes in ascending priority
  and caches the list on first access. Ours has priority 1000, so on a board the real
  embedded device (priority 50) stays ``devices[0]``, the default.
- ``capabilities = {"REGISTER_RW": True}``: every MMIO word access becomes a call to
  :meth:`read_registers` / :meth:`write_registers`, so a write to AP_START or to a DMA
  LENGTH register is seen at once and the models advance synchronously.
- ``arch = "armv7l"``: ``pynq.Clocks`` takes the Zynq-7000 path and reads and writes
  the SLCR clock registers at 0xF8000000, emulated here.
- ``get_bitfile_metadata``: the runtime metadata parsed from the .hwh next to the
  .bit. pynqmetadata 0.2.0 leaves ``clock_dict[i]["frequency"]`` None for Zynq-7000
  handoffs, and pynq 4.0.0's ``Overlay.download`` passes it to ``Clocks.set_pl_clk``;
  the device fills it from ``PCW_FPGA{i}_PERIPHERAL_FREQMHZ``. pynq 3.1 uses the
  divisors instead; both work.
- ``download`` programs the "PL": it builds one model per IP of the handoff and ends
  with ``post_download``, which pynq uses to record the timestamp.

No endless polls. The models advance only inside register writes (and a read resumes
a pump cut short at ``MAX_PUMP_ROUNDS``), so once the device has settled, a status
register (DMASR, HLS CTRL) cannot change until the host writes some register. pynq's
``DMA.sendchannel.wait()`` would then spin forever, as it does on the board. Here a
read of an unchanged status register is a *poll*; after ``STALL_POLLS`` polls spanning
at least ``STALL_SECONDS`` with no register write in between, the read raises
:class:`~cimstack.errors.DmaTimeout` saying what the channel or IP is missing. The
count lets a host read a status a few times; the time lets another thread write.
"""

from __future__ import annotations

import struct
import time
import warnings
from pathlib import Path
from typing import Callable, Mapping
from xml.etree import ElementTree as ET

import numpy as np
from pynq.buffer import PynqBuffer
from pynq.pl_server.device import Device

from ..errors import DmaTimeout, HardwareError
from ..overlay_shape import ARG_BASE, KERNELS, overlay_shape
from .csim import csim_kernel
from .dma import AxiDmaModel
from .hls_ip import HlsIpModel
from .hwh import clock_plan
from .memory import DdrModel, MemoryFault
from .slcr import SLCR_BASE, SLCR_SIZE, SlcrModel

DMA_VLNV = "xilinx.com:ip:axi_dma:7.1"
ZYNQ_ARCH = "armv7l"
PROBE_PRIORITY = 1000
DEFAULT_FIFO_DEPTH = 64     # beats buffered between a DMA channel and its kernel
MAX_PUMP_ROUNDS = 100_000
STALL_POLLS = 1000          # unchanged status reads without a register write ...
STALL_SECONDS = 0.5         # ... spanning at least this long: the host spins forever

KernelFactory = Callable[[], object]


def _default_kernel_factory(ip_name: str, vlnv: str) -> KernelFactory | None:
    """The C-simulation kernel for a known cimstack VLNV, built on first AP_START
    (:func:`~cimstack.emu.csim.csim_kernel`: split over ``CIMSTACK_CSIM_WORKERS``
    copies when the kernel declares a vector mode)."""
    decl = next((k for k in KERNELS.values() if k.vlnv == vlnv), None)
    if decl is None:
        return None

    def build():
        return csim_kernel(decl)

    return build


class EmuDevice(Device):
    """A PYNQ-Z2-like Zynq device in software: DDR, SLCR clocks, and the PL models
    (AXI DMA and HLS IP) of whatever overlay is downloaded onto it.

    Parameters
    ----------
    board:
        Board folder name; gives the DDR window and the PS clocks.
    kernels:
        ``{ip_name: factory}``; ``factory()`` returns the kernel object run by that
        IP. IPs not listed get the C-simulation kernel of their VLNV.
    fifo_depth:
        Depth in beats of each stream FIFO between a DMA and its kernel.
    default_cacheable:
        Whether ``allocate`` makes cacheable buffers when not told (pynq's own
        default is non-cacheable).
    """

    _probe_priority_ = PROBE_PRIORITY

    @classmethod
    def _probe_(cls):
        return [emulated_device()]

    def __init__(self, board: str = "pynq-z2", kernels: Mapping[str, KernelFactory] | None = None,
                 fifo_depth: int = DEFAULT_FIFO_DEPTH, default_cacheable: bool = False):
        super().__init__(f"cimstack-emu-{board}")
        shape = overlay_shape(board)
        mem = shape.board.memory
        self.board = board
        self.name = f"{board} (cimstack emulation)"
        self.capabilities = {"REGISTER_RW": True}
        self.arch = ZYNQ_ARCH
        self.timestamp = ""
        self.bitfile_name = None
        self.fifo_depth = fifo_depth
        self.default_cacheable = default_cacheable
        self.kernel_factories: dict[str, KernelFactory] = dict(kernels or {})
        self.ddr = DdrModel(mem.ddr_base, mem.ddr_size)
        self.slcr = SlcrModel(clock_plan(shape))
        self.dmas: dict[str, AxiDmaModel] = {}
        self.ips: dict[str, HlsIpModel] = {}
        self._map: list[tuple[int, int, object]] = []
        self._settled = True        # the last pump ended because nothing could move
        self._polls: dict[tuple[int, int], tuple[int, int, float]] = {}
        self._build_map()

    def __repr__(self) -> str:
        return f"<EmuDevice {self.name}>"

    # ----------------------------------------------------------- kernels
    def set_kernels(self, kernels: Mapping[str, KernelFactory | None]) -> None:
        """Plug kernel factories by IP name (``None`` restores the C-simulation
        kernel); takes effect on the IP's next start and on every later download."""
        for name, factory in kernels.items():
            if factory is None:
                self.kernel_factories.pop(name, None)
            else:
                self.kernel_factories[name] = factory
            ip = self.ips.get(name)
            if ip is not None:
                ip.kernel_factory = factory or _default_kernel_factory(name, ip.vlnv)
                ip.kernel = None

    # ---------------------------------------------------------- metadata
    def get_bitfile_metadata(self, bitfile_name, partial: bool = False):
        from pynqmetadata.frontends import Metadata
        from pynqmetadata.views.runtime import RuntimeMetadataParser

        hwh = Path(bitfile_name).with_suffix(".hwh")
        if not hwh.is_file():
            raise IOError(f"no hardware handoff {hwh} next to {bitfile_name}; the emulated "
                          "device builds the PL from it (cimstack.emu.write_overlay makes one)")
        parser = RuntimeMetadataParser(Metadata(input=str(hwh)))
        _fill_clock_frequencies(parser)
        parser.bin_data = None
        parser.xclbin_data = None
        parser.dtbo_data = None
        parser.hwh_path = str(hwh)
        return parser

    # ---------------------------------------------------------- download
    def download(self, bitstream, parser=None):
        """Program the PL: a fresh model for every IP in the handoff."""
        if parser is None:
            parser = self.get_bitfile_metadata(bitstream.bitfile_name)
        self._program(parser, getattr(parser, "hwh_path", None)
                      or str(Path(bitstream.bitfile_name).with_suffix(".hwh")))
        self.post_download(bitstream, parser, self.name)

    def gen_cache(self, bitstream, parser=None):
        """Nothing to cache: the handoff is parsed on every Overlay."""

    def close(self):
        """Nothing to release (pynq 3.1's ``Overlay.free`` calls this)."""

    def shutdown(self):
        """No AXI shutdown managers to drive."""

    def insert_device_tree(self, abs_dtbo):
        warnings.warn(f"emulated device ignores device tree overlay {abs_dtbo}")

    def remove_device_tree(self, abs_dtbo):
        pass

    def _program(self, parser, hwh_path: str) -> None:
        links = stream_links(hwh_path)
        self.dmas, self.ips = {}, {}
        for name, desc in parser.ip_dict.items():
            if desc.get("type") == DMA_VLNV:
                self.dmas[name] = AxiDmaModel(name, desc.get("parameters") or {}, self.ddr,
                                              self.fifo_depth)
        for name, desc in parser.ip_dict.items():
            regs = desc.get("registers") or {}
            if name in self.dmas or "CTRL" not in regs:
                continue
            in_fifo = out_fifo = None
            for (src, src_itf), (dst, dst_itf) in links.items():
                if dst == name and src in self.dmas and src_itf == "M_AXIS_MM2S":
                    in_fifo = self.dmas[src].mm2s.fifo
                if src == name and dst in self.dmas and dst_itf == "S_AXIS_S2MM":
                    out_fifo = self.dmas[dst].s2mm.fifo
            factory = self.kernel_factories.get(name) or _default_kernel_factory(
                name, desc.get("type", ""))
            decl = next((k for k in KERNELS.values() if k.vlnv == desc.get("type")), None)
            signed = {r.name for r in decl.registers if r.signed} if decl else set()
            args = {rname: (int(r["address_offset"]), rname in signed)
                    for rname, r in regs.items() if int(r["address_offset"]) >= ARG_BASE}
            self.ips[name] = HlsIpModel(name, args, factory, in_fifo, out_fifo,
                                        vlnv=desc.get("type", ""))
        for dma in self.dmas.values():          # each channel's kernel, for messages
            for ip in self.ips.values():
                if ip.in_fifo is dma.mm2s.fifo:
                    dma.mm2s.peer = ip
                if ip.out_fifo is dma.s2mm.fifo:
                    dma.s2mm.peer = ip
        self._polls.clear()
        self._build_map(parser.ip_dict)

    def _build_map(self, ip_dict: Mapping | None = None) -> None:
        regions = [(SLCR_BASE, SLCR_BASE + SLCR_SIZE, self.slcr)]
        for name, desc in (ip_dict or {}).items():
            model = self.dmas.get(name) or self.ips.get(name)
            if model is not None and desc.get("phys_addr") is not None:
                base = int(desc["phys_addr"])
                regions.append((base, base + int(desc["addr_range"]), model))
        self._map = sorted(regions, key=lambda r: r[0])

    # ---------------------------------------------------------- register bus
    def _decode(self, address: int, length: int):
        for lo, hi, model in self._map:
            if lo <= address < hi:
                if address + length > hi:
                    break
                return model, lo
        if self.ddr.contains(address):
            return self.ddr, 0
        mapped = ", ".join(f"0x{lo:08X}-0x{hi - 1:08X} {getattr(m, 'name', 'SLCR')}"
                           for lo, hi, m in self._map)
        raise HardwareError(
            f"no slave answers at 0x{address:08X} (+{length} bytes): on the board this is "
            f"a bus error. Mapped: {mapped}. Is the overlay downloaded?")

    def read_registers(self, address: int, length: int) -> bytes:
        model, base = self._decode(address, length)
        if model is self.ddr:
            try:
                return bytes(self.ddr.read(address, length))
            except MemoryFault as exc:
                raise HardwareError(f"MMIO read of DDR failed: {exc}") from None
        if not self._settled:
            self.pump()
        first = address & ~3
        out = bytearray()
        for a in range(first, address + length, 4):
            value = model.read(a - base) & 0xFFFFFFFF
            if self._settled and a - base in getattr(model, "status_offsets", ()):
                self._count_poll(model, a - base, value)
            out += struct.pack("<I", value)
        return bytes(out[address - first:address - first + length])

    def _count_poll(self, model, off: int, value: int) -> None:
        """Count an unchanged read of a status register; raise once the host has
        clearly been spinning on it (see the module docstring)."""
        key = (id(model), off)
        seen, count, since = self._polls.get(key, (None, 0, 0.0))
        now = time.monotonic()
        if seen != value:
            count, since = 0, now
        count += 1
        self._polls[key] = (value, count, since)
        if count >= STALL_POLLS and now - since >= STALL_SECONDS:
            raise DmaTimeout(
                f"{model.stall_reason(off)} ({count} reads over {now - since:.1f} s saw no "
                "change and none can come without a register write; on the board this "
                "wait would never end)")

    def write_registers(self, address: int, data) -> None:
        data = bytes(data)
        model, base = self._decode(address, len(data))
        if model is self.ddr:
            try:
                self.ddr.write(address, data)
            except MemoryFault as exc:
                raise HardwareError(f"MMIO write to DDR failed: {exc}") from None
            return
        if address % 4 or len(data) % 4:
            raise HardwareError(f"unaligned register write at 0x{address:08X} "
                                f"({len(data)} bytes): AXI-Lite slaves take 32-bit words")
        self._polls.clear()                 # the host acted: every poll starts afresh
        inert = getattr(model, "write_is_inert", None)
        moves = inert is None
        for i in range(0, len(data), 4):
            model.write(address - base + i, int.from_bytes(data[i:i + 4], "little"))
            moves = moves or not inert(address - base + i)
        if moves:                           # an argument write alone starts nothing
            self.pump()

    def pump(self) -> None:
        """Let data move through DMAs and kernels until nothing more can happen, or
        for at most ``MAX_PUMP_ROUNDS`` rounds (the next register read resumes)."""
        models = list(self.dmas.values()) + list(self.ips.values())
        for ip in self.ips.values():
            ip.new_pump()
        self._settled = False
        for _ in range(MAX_PUMP_ROUNDS):
            progress = False
            for m in models:
                progress |= m.step()
            if not progress:
                self._settled = True
                return

    # ------------------------------------------------------------- memory
    def allocate(self, shape, dtype="u4", cacheable=None, **kwargs) -> PynqBuffer:
        """A physically contiguous buffer in emulated DDR (see :mod:`.memory`)."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64)) if np.ndim(shape) else int(shape)
        nbytes = count * dtype.itemsize
        if cacheable is None:
            cacheable = self.default_cacheable
        region = self.ddr.allocate(nbytes, bool(cacheable))
        buf = EmuBuffer(shape, dtype, buffer=region.cpu[:nbytes].data, device=self,
                        device_address=region.phys, bo=region, coherent=False)
        buf._region = region
        return buf

    def flush(self, bo, offset, ptr, size):
        self.ddr.flush(bo, offset, size)

    def invalidate(self, bo, offset, ptr, size):
        self.ddr.invalidate(bo, offset, size)

    # --------------------------------------------------------- diagnostics
    def diagnose(self, address: int | None = None) -> str:
        """What the models at ``address`` (or all of them) are waiting for or why
        they failed, in words: DMA faults, stalled transfers, kernel state."""
        if address is not None:
            for lo, hi, model in self._map:
                if lo <= address < hi and isinstance(model, AxiDmaModel):
                    text = model.diagnose(address - lo)
                    kernels = [ip.describe() for ip in self.ips.values()
                               if ip.in_fifo in (model.mm2s.fifo,)
                               or ip.out_fifo in (model.s2mm.fifo,)]
                    return "; ".join(t for t in [text, *kernels] if t)
        parts = [d.diagnose() for d in self.dmas.values()]
        parts += [ip.describe() for ip in self.ips.values()]
        return "; ".join(p for p in parts if p)

    def pl_clk_mhz(self, i: int = 0) -> float:
        """The PL clock ``i`` as currently programmed in the SLCR."""
        return self.slcr.fclk_mhz(i)


class EmuBuffer(PynqBuffer):
    """A ``PynqBuffer`` whose memory is a region of the emulated DDR.

    pynq's own ``freebuffer`` unmaps XRT memory with libc (board only); here freeing,
    explicit or when the owning array is collected, returns the region to the
    allocator. Views never free.
    """

    def freebuffer(self):
        region = self.__dict__.get("_region")
        if region is not None:
            del self.__dict__["_region"]
            self.device.ddr.return_pointer(region)
            self.freed = True


def _fill_clock_frequencies(parser) -> None:
    """pynqmetadata 0.2.0 looks for the ZynqMP parameter name and returns None for
    Zynq-7000; take the frequency from the PS7 parameters instead."""
    ps = parser.ip_dict.get(getattr(parser, "ps_name", ""), {})
    params = ps.get("parameters", {}) if isinstance(ps, dict) else {}
    for i, clk in parser.clock_dict.items():
        if clk.get("frequency") is None:
            for key in (f"PCW_FPGA{i}_PERIPHERAL_FREQMHZ", f"PCW_ACT_FPGA{i}_PERIPHERAL_FREQMHZ"):
                if params.get(key) not in (None, ""):
                    clk["frequency"] = float(params[key])
                    break


def stream_links(hwh_path: str) -> dict[tuple[str, str], tuple[str, str]]:
    """AXI-Stream nets of a handoff: ``{(driver, interface): (sink, interface)}``,
    paired by the BUSNAME both ends share."""
    root = ET.parse(hwh_path).getroot()
    nets: dict[str, dict[str, tuple[str, str]]] = {}
    for module in root.iter("MODULE"):
        inst = module.get("INSTANCE")
        for bus in module.iter("BUSINTERFACE"):
            if not (bus.get("VLNV") or "").startswith("xilinx.com:interface:axis:"):
                continue
            role = "src" if bus.get("TYPE") in ("MASTER", "INITIATOR") else "dst"
            nets.setdefault(bus.get("BUSNAME"), {})[role] = (inst, bus.get("NAME"))
    return {n["src"]: n["dst"] for n in nets.values() if "src" in n and "dst" in n}


_DEVICES: dict[str, EmuDevice] = {}


def emulated_device(board: str = "pynq-z2") -> EmuDevice:
    """The process-wide emulated device for ``board`` (created on first use)."""
    if board not in _DEVICES:
        _DEVICES[board] = EmuDevice(board)
    return _DEVICES[board]
