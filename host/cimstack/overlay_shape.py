"""The one declaration of the overlay: its kernels, their control registers, DMAs,
addresses and clock. The emulated device's hardware handoff (.hwh), the drivers, and
(later) the Vivado block design are all produced from this module; tests check that
the HLS top functions declare the same arguments in the same order. A user's overlay
(a .bit with its .hwh) is checked against the board here before pynq reads it.

Vitis HLS facts encoded here: with ``ap_ctrl_hs`` on ``s_axilite`` the control
register sits at 0x00 (bit0 AP_START, bit1 AP_DONE clear-on-read, bit2 AP_IDLE,
bit3 AP_READY, bit7 AUTO_RESTART), 0x04 GIER, 0x08 IP_IER, 0x0C IP_ISR, and 32-bit
scalar arguments follow from 0x10, 8 bytes apart, in the order of the top function's
parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from xml.etree import ElementTree as ET

from .config import AXI_MIN_RANGE, BoardSpec, check_window, is_board_path, load_board
from .errors import ConfigError

# ap_ctrl_hs block (same for every HLS kernel)
CTRL, GIER, IP_IER, IP_ISR = 0x00, 0x04, 0x08, 0x0C
AP_START, AP_DONE, AP_IDLE, AP_READY, AP_AUTO_RESTART = 0x1, 0x2, 0x4, 0x8, 0x80
ARG_BASE, ARG_STRIDE = 0x10, 0x08

STREAM_BITS = 64          # AXI-Stream data width of every kernel port (= HP0 width)
STREAM_BYTES = STREAM_BITS // 8


@dataclass(frozen=True)
class Register:
    """One 32-bit scalar argument of a kernel's AXI-Lite control interface."""

    name: str
    offset: int
    doc: str
    signed: bool = False


def _args(*specs: tuple) -> tuple[Register, ...]:
    """Registers in top-function parameter order; offsets follow the HLS rule."""
    return tuple(Register(name, ARG_BASE + ARG_STRIDE * i, doc, *rest)
                 for i, (name, doc, *rest) in enumerate(specs))


@dataclass(frozen=True)
class KernelDecl:
    """An HLS kernel: its top function, VLNV, registers and on-chip capacity."""

    name: str                     # family: dcim / acim / snn
    top: str                      # HLS top function name (hls/<name>/<top>.cpp)
    vlnv: str                     # what the exported IP calls itself; drivers bind to it
    registers: tuple[Register, ...]
    capacity: dict                # static array bounds compiled into the kernel
    modes: dict                   # values of the ``mode`` register
    splits_k: bool = False        # K > MAX_K runs as row tiles of dcim row groups (hw.tiles)
    # The mode whose call streams vector_count input vectors, each vector's outputs a
    # function of the kernel's loaded state and the registers alone (not of the call's
    # other vectors): the emulator may run such a call as parts on several copies of the
    # kernel (emu.csim.ParallelCsimKernel). None: the kernel's calls never split.
    vector_mode: str | None = None
    vector_count: str = "n_vec"
    # None: every vector is the same number of input words (words_needed of one vector);
    # a register name: a vector is that many event packets (events.wire, variable length)
    vector_packets: str | None = None
    # the register holding a call's input words, when one does (set for each part)
    words_register: str | None = None

    def reg(self, name: str) -> Register:
        for r in self.registers:
            if r.name == name:
                return r
        raise KeyError(f"kernel {self.name} has no register {name!r}; "
                       f"registers: {[r.name for r in self.registers]}")

    def check_k(self, layer: str, k: int) -> None:
        """ConfigError when a layer's K inputs per output exceed the MAX_K of a kernel
        that does not split K (``splits_k`` False)."""
        if k > self.capacity["MAX_K"]:
            raise ConfigError(f"layer {layer} has K = {k} inputs per output; the {self.name} "
                              f"kernel holds at most MAX_K = {self.capacity['MAX_K']} and "
                              "cannot split K into row tiles (split the layer's input "
                              "channels over several layers)")


DCIM = KernelDecl(
    name="dcim",
    top="dcim_top",
    vlnv="cimstack.org:hls:dcim_top:1.0",
    registers=_args(
        ("mode", "0 load weights, 1 load requantizer, 2 compute"),
        ("k_rows", "K: inputs per output (matrix rows), 1..MAX_K"),
        ("n_out", "N: output channels (matrix columns), 1..MAX_N"),
        ("n_vec", "input vectors in this compute call"),
        ("w_bits", "weight precision 1..8 (1 = binary {-1,+1})"),
        ("x_bits", "input precision 1..8, applied bit-serially LSB first"),
        ("rows_on", "word lines active per cycle; row group size"),
        ("psum_bits", "column ADC bits; 0 = exact partial sums"),
        ("psum_mode", "0 saturate, 1 quantize past the ADC range"),
        ("shift", "requantizer right shift s, 0..62"),
        ("out_lo", "requantizer clamp low (signed)", True),
        ("out_hi", "requantizer clamp high (signed)", True),
    ),
    capacity={"MAX_K": 1152, "MAX_N": 128},
    modes={"load_weights": 0, "load_requant": 1, "compute": 2},
    splits_k=True,
    # compute: every vector is read, computed from the loaded weights, requantizer and
    # block table, and written before the next one (hls/dcim/dcim_top.cpp)
    vector_mode="compute",
)

ACIM = KernelDecl(
    name="acim",
    top="acim_top",
    vlnv="cimstack.org:hls:acim_top:1.0",
    registers=_args(
        ("mode", "0 load weights, 1 load requantizer, 2 compute, 3 load ABN gain/offset"),
        ("k_rows", "K: active rows (inputs per output), 1..min(MAX_K, rows)"),
        ("n_out", "N: output channels of this slice, 1..MAX_N"),
        ("n_vec", "input vectors in this compute call"),
        ("w_bits", "weight precision 1..8 (1 = binary {-1,+1})"),
        ("x_bits", "input precision 1..8, applied bit-serially"),
        ("rows", "array rows (fixed-swing normalization), 1..1152"),
        ("segments", "row segments of the array split; divides rows"),
        ("swing", "0 fixed (normalize by rows), 1 adaptive (by active segments)"),
        ("adc_bits", "ADC resolution 1..8"),
        ("per_bit", "0 charge accumulation, 1 ADC after every input bit + shift-add"),
        ("gain_frac", "fractional bits of the ABN gains, 0..16"),
        ("offset_frac", "fractional bits of the ABN offsets, 0..16"),
        ("sigma_q", "noise sigma in 1/256 ADC LSB, 0..4096"),
        ("seed", "noise seed (32 bits)"),
        ("layer", "noise key: layer index (0..65535)"),
        ("chan_base", "noise key: global index of this slice's first channel"),
        ("sample_base", "noise key: run index of this call's first input vector"),
        ("shift", "requantizer right shift s, 0..62"),
        ("out_lo", "requantizer clamp low (signed)", True),
        ("out_hi", "requantizer clamp high (signed)", True),
    ),
    capacity={"MAX_K": 1152, "MAX_N": 128},
    modes={"load_weights": 0, "load_requant": 1, "compute": 2, "load_abn": 3},
    # no vector_mode: a vector's noise is keyed by its index sample_base + v, so a part
    # of a call would need its own sample_base, which past 2^32 the register cannot hold
)

SNN = KernelDecl(
    name="snn",
    top="snn_top",
    vlnv="cimstack.org:hls:snn_top:1.0",
    registers=_args(
        ("mode", "0 load weights, 1 set membranes to v_init, 2 one timestep, 3 read "
                 "membranes, 4 n_steps timesteps"),
        ("op", "0 conv (square kernel), 1 fully connected"),
        ("src_h", "height of the incoming event map (before input pooling)"),
        ("src_w", "width of the incoming event map (before input pooling)"),
        ("pool", "OR-pooling factor applied to incoming events, 1 = none"),
        ("in_c", "input channels after pooling (fc: C of the flattened C,H,W)"),
        ("in_h", "input height after pooling"),
        ("in_w", "input width after pooling"),
        ("out_c", "output channels N (fc: neurons)"),
        ("ksize", "conv kernel size (fc: ignored)"),
        ("padding", "conv zero padding (fc: ignored)"),
        ("stride", "conv stride in both directions, 1..MAX_STRIDE (fc: 1)"),
        ("n_lo", "first output neuron (flat n,y,x) of the resident membrane slice"),
        ("n_count", "neurons in the resident slice, 1..MAX_COUNT"),
        ("w_bits", "weight width 1..16 (1 = binary {-1,+1})"),
        ("v_bits", "membrane width 1..16 (signed)"),
        ("theta", "firing threshold, 1..2^(v_bits-1)-1"),
        ("leak_shift", "leak v -= v >> leak_shift; 0 = none"),
        ("reset_mode", "0 subtract theta, 1 to zero, 2 to zero after every timestep"),
        ("overflow", "0 saturate, 1 wrap at the v_bits range"),
        ("fire_mode", "0 fire at v >= theta, 1 at v > theta"),
        ("leak_order", "0 leak after adding the input, 1 before"),
        ("v_init", "membrane value set by mode 1 (clear), signed v_bits", True),
        ("n_words", "64-bit words of this call's input (load weights / timestep packets)"),
        ("n_steps", "timesteps of a mode 4 (run) call, 1..MAX_STEPS: its input holds that "
                    "many event packets, its output one spike packet each"),
        ("n_samples", "mode 4: 0 = the packets continue the membranes as they are; "
                      "1..MAX_SAMPLES = that many samples of n_steps packets each, the "
                      "membranes set to v_init before each sample's first packet"),
        ("v_out", "mode 4 with n_samples >= 1: 1 = after each sample's spike packets one "
                  "membrane packet (marker n_steps, each membrane's v_bits-bit field, pad)"),
    ),
    capacity={"ROWS": 512, "COLS": 256, "MAX_IN": 65536, "MAX_COUNT": 8192,
              "MAX_OUT_C": 256, "MAX_KSIZE": 7, "MAX_STRIDE": 7, "MAX_PAD": 64, "MAX_STEPS": 65535,
              "MAX_SAMPLES": 65535, "SLICE_WORDS": 256 * 7 * 7, "MAX_SLOTS": 64},
    modes={"load_weights": 0, "clear": 1, "step": 2, "read_membranes": 3, "run": 4},
    # a run of samples splits between them: each sample starts from v_init, so its spikes
    # are a function of the loaded weights, the registers and its own packets
    vector_mode="run",
    vector_count="n_samples",
    vector_packets="n_steps",
    words_register="n_words",
)

KERNELS = {k.name: k for k in (DCIM, ACIM, SNN)}


@dataclass(frozen=True)
class DmaDecl:
    """A Xilinx AXI DMA 7.1 in simple mode (no scatter-gather)."""

    name: str
    base: int
    length_width: int = 26        # c_sg_length_width: max transfer 2^26 - 1 bytes
    data_width: int = STREAM_BITS  # MM2S / S2MM stream widths
    vlnv: str = "xilinx.com:ip:axi_dma:7.1"
    addr_range: int = 0x10000

    @property
    def max_transfer(self) -> int:
        return (1 << self.length_width) - 1


@dataclass(frozen=True)
class Slot:
    """One kernel instance in the overlay with the DMA that feeds it."""

    ip_name: str
    kernel: KernelDecl
    base: int
    dma: DmaDecl
    addr_range: int = 0x10000


@dataclass(frozen=True)
class OverlayShape:
    """The whole overlay: board facts plus kernel slots."""

    name: str
    board: BoardSpec
    slots: tuple[Slot, ...]

    def windows(self) -> list[tuple[str, int, int]]:
        """(IP name, base, address range) of every AXI-Lite slave: kernels and DMAs."""
        return [w for s in self.slots for w in ((s.ip_name, s.base, s.addr_range),
                                                (s.dma.name, s.dma.base, s.dma.addr_range))]

    def check_addresses(self) -> None:
        """ConfigError unless every IP's address range is a power of two of at least
        4 KiB, its base is aligned to it, it lies in the board's M_AXI_GP0 window and no
        two ranges overlap (the rules Vivado's address editor enforces)."""
        mem = self.board.memory
        windows = sorted(self.windows(), key=lambda w: w[1])
        for ip, base, size in windows:
            if size < AXI_MIN_RANGE or size & (size - 1):
                raise ConfigError(f"overlay IP {ip}: address range 0x{size:X} is not a power "
                                  "of two of at least 4 KiB")
            if base % size:
                raise ConfigError(f"overlay IP {ip}: base 0x{base:08X} is not aligned to its "
                                  f"address range 0x{size:X}")
            check_window(f"overlay IP {ip}", base, size, (mem.pl_gp0_base,
                         mem.pl_gp0_base + mem.pl_gp0_size), f"board {self.board.name} M_AXI_GP0")
        for (ip_a, base_a, size_a), (ip_b, base_b, _) in zip(windows, windows[1:]):
            if base_a + size_a > base_b:
                raise ConfigError(f"overlay IPs {ip_a} (0x{base_a:08X}, range 0x{size_a:X}) "
                                  f"and {ip_b} (0x{base_b:08X}) overlap")

    @property
    def fclk0_mhz(self) -> float:
        return self.board.clocks.fclk0_mhz

    def slot(self, kernel: str) -> Slot:
        for s in self.slots:
            if s.kernel.name == kernel:
                return s
        raise KeyError(f"overlay {self.name} has no {kernel!r} kernel; it has "
                       f"{[s.kernel.name for s in self.slots]}")


def overlay_shape(board: str = "pynq-z2") -> OverlayShape:
    """The cimstack overlay for ``board``: a folder name under boards/ (built once per
    process) or a board.toml path (read on every call, so an edited file is seen)."""
    return _build_shape(board) if is_board_path(board) else _named_shape(board)


@lru_cache(maxsize=None)
def _named_shape(board: str) -> OverlayShape:
    return _build_shape(board)


def _build_shape(board: str) -> OverlayShape:
    shape = OverlayShape(
        name="cimstack",
        board=load_board(board),
        slots=(
            Slot("dcim_0", DCIM, base=0x43C00000, dma=DmaDecl("dcim_dma", base=0x40400000)),
            Slot("acim_0", ACIM, base=0x43C10000, dma=DmaDecl("acim_dma", base=0x40410000)),
            Slot("snn_0", SNN, base=0x43C20000, dma=DmaDecl("snn_dma", base=0x40420000)),
        ),
    )
    shape.check_addresses()          # against the board's M_AXI_GP0 window, among others
    return shape


# ------------------------------------------------------------ a user's handoff

def hwh_part(hwh: Path) -> str:
    """The FPGA part a Vivado .hwh was built for, from its SYSTEMINFO element
    (``DEVICE="7z020" PACKAGE="clg400" SPEEDGRADE="-1"`` -> ``xc7z020clg400-1``).

    A file that is not a handoff (not XML, truncated, no SYSTEMINFO or MODULE
    elements) is a :class:`ConfigError` of one line naming the file."""
    def bad(reason: str) -> ConfigError:
        return ConfigError(f"{hwh} is not a Vivado hardware handoff ({reason}); use the .hwh "
                           "Vivado wrote beside the .bit (make -C overlay)")
    try:
        root = ET.parse(hwh).getroot()
    except ET.ParseError as exc:
        raise bad(f"not well-formed XML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {hwh}: {exc.strerror}") from None
    info = root.find("SYSTEMINFO")
    if root.tag != "EDKSYSTEM" or info is None:
        raise bad("no EDKSYSTEM/SYSTEMINFO element")
    if root.find("MODULES/MODULE") is None:
        raise bad("no MODULES/MODULE element")
    device, package, speed = (info.get(k, "") for k in ("DEVICE", "PACKAGE", "SPEEDGRADE"))
    if not device:
        raise bad("SYSTEMINFO has no DEVICE")
    return ((device if device.lower().startswith("xc") else "xc" + device)
            + package + speed).lower()


def check_handoff(bitfile: str | Path, board: str = "pynq-z2") -> Path:
    """Check a user's overlay before pynq reads it: the .bit exists, its .hwh beside it
    is a handoff, and built for the board's part. Returns the .hwh path."""
    bitfile = Path(bitfile)
    hwh = bitfile.with_suffix(".hwh")
    if not bitfile.is_file():
        raise ConfigError(f"bitstream {bitfile} does not exist; build it with "
                          "`make -C overlay` or give its path")
    if not hwh.is_file():
        raise ConfigError(f"{bitfile} has no hardware handoff {hwh.name} beside it; copy the "
                          ".hwh Vivado wrote with the bitstream into the same folder")
    part = overlay_shape(board).board.part
    found = hwh_part(hwh)
    if found != part.lower():
        raise ConfigError(f"{hwh} was built for part {found}, but board {board} has part "
                          f"{part}: rebuild the overlay for this board (make -C overlay)")
    return hwh
