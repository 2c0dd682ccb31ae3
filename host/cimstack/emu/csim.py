"""Host (g++) builds of the HLS kernels, loaded with ctypes: the C simulation the
emulated device runs in place of the FPGA.

A kernel's sources are ``hls/<kernel>/*.cpp`` except the testbenches (``tb_*.cpp``),
which include a small C bridge (``<kernel>_csim.cpp``) exporting

- ``long long cimstack_<kernel>_words_needed(const uint32_t* args)``
- ``long long cimstack_<kernel>_words_out(const uint32_t* args)``
- ``int cimstack_<kernel>_run(args, in_data, in_last, n_in, &n_consumed,
  out_data, out_last, out_cap, &n_out)``

with ``args`` the kernel's registers in :class:`~cimstack.overlay_shape.KernelDecl`
order. Libraries are cached under ``cache_dir()/csim`` by a hash of every source and
header, the flags and the compiler version.

A cached library is trusted only if its bytes have the SHA-256 recorded beside it
(``<library>.sha256``, written when it was built): a truncated library would otherwise
crash the process with SIGBUS when ctypes maps it. A library that fails the check is
rebuilt, with one logged line saying so. Each :class:`CsimKernel` loads its own copy of
the checked bytes (``.<library>.<pid>.<random>``, removed as soon as it is mapped);
copies and compiler outputs left by a process that crashed are removed by the next
build.

:func:`csim_kernel` gives the device its kernel: a :class:`ParallelCsimKernel` (the
C simulation of one kernel on several private copies, one per host core, as a
multi-threaded RTL simulator uses the host's cores) for a kernel that declares its
vector-stream mode (``KernelDecl.vector_mode``), else a :class:`CsimKernel`. The number
of copies is ``CIMSTACK_CSIM_WORKERS``, else the usable cores up to
``DEFAULT_MAX_WORKERS``; 1 is a plain :class:`CsimKernel`.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import CimstackError, ConfigError, HardwareError, OutputError, ToolMissing
from ..events.wire import packet_opens
from ..fileio import write_text_atomic
from ..overlay_shape import KERNELS, KernelDecl
from ..paths import cache_dir, project_root
from ..threads import map_on_cores, usable_cores

# -O3: the kernels' fixed-size lane loops are unrolled and their helpers inlined (the dcim
# C simulation runs about twice as fast as with -O2); the cache key includes the flags.
CXXFLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC")
# x86-64 popcount is an extension (present on every x86-64 CPU since 2008); the kernels'
# bit-serial column reads are popcounts. Wider vector flags (-mavx2 -mbmi2,
# -march=x86-64-v3, -march=native) made the dcim C simulation slower on an AVX2 machine
# (ResNet18's kernel calls about 1.3x the time), so none is added.
ARCH_FLAGS = ("-mpopcnt",) if platform.machine().lower() in ("x86_64", "amd64") else ()

# Return codes of cimstack_<kernel>_run (hls/include/cimstack/csim_bridge.h).
OK, ERR_ARGS, ERR_INPUT, ERR_OUTPUT, ERR_PROTOCOL = 0, -1, -2, -3, -4
LEFTOVER_AGE_S = 600     # a temporary file this old whose process is gone is removed
COMPILE_TIMEOUT_S = 900  # one kernel compiles in well under a minute
WORKERS_ENV = "CIMSTACK_CSIM_WORKERS"  # copies of a splittable kernel (csim_kernel)
DEFAULT_MAX_WORKERS = 4  # the default: the usable cores, at most this many
MAX_WORKERS = 64         # the most CIMSTACK_CSIM_WORKERS may ask for
# A part of a split call reads at least this many input words. Measured on the dcim
# kernel (2-core host, shared): a split call costs about 0.15 ms more than one call, and
# an input word about 0.1-0.2 us of C simulation (K = 27, N = 16 .. K = 1152, N = 128).
MIN_PART_WORDS = 2048

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildResult:
    """A compiled kernel library: where it is, whether this call compiled it, how long
    the call took (compile or cache hit), the cache key and the SHA-256 of its bytes."""

    path: Path
    rebuilt: bool
    seconds: float
    key: str
    sha256: str


def ap_types_dir() -> Path:
    """The open-source ap_int / hls_stream headers shipped in the hls4ml wheel.

    Found without importing hls4ml (its import pulls in heavy dependencies).
    """
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.submodule_search_locations:
        raise ToolMissing("the C simulation needs the ap_types headers of hls4ml, which is "
                          "not installed: pip install hls4ml")
    path = Path(list(spec.submodule_search_locations)[0]) / "templates" / "vivado" / "ap_types"
    if not (path / "ap_int.h").is_file():
        raise ToolMissing(f"hls4ml is installed but {path} has no ap_int.h; reinstall it: "
                          "pip install --force-reinstall hls4ml")
    return path


def find_compiler(cxx: str | None = None) -> str:
    """Absolute path of the C++ compiler (``cxx``, else ``$CXX``, else ``g++``)."""
    name = cxx or os.environ.get("CXX") or "g++"
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"C++ compiler {name!r} not found on PATH; the kernel C simulation "
                          "needs g++ >= 9 (e.g. `apt-get install g++`), or set CXX")
    return path


@lru_cache(maxsize=None)
def _compiler_version(path: str, mtime_ns: int) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True,
                             check=False, timeout=60)
    except subprocess.TimeoutExpired:
        raise ToolMissing(f"{path} --version did not answer within 60 s; check the "
                          "compiler installation or set CXX") from None
    return out.stdout.strip()


def compiler_version(path: str) -> str:
    """``<compiler> --version`` output (cached per binary and modification time)."""
    return _compiler_version(path, os.stat(path).st_mtime_ns)


def kernel_files(kernel: str, hls_dir: Path) -> tuple[list[Path], list[Path]]:
    """(sources to compile, headers they may include) of ``kernel`` under ``hls_dir``."""
    kdir = hls_dir / kernel
    sources = sorted(p for p in kdir.glob("*.cpp") if not p.name.startswith("tb_"))
    if not sources:
        raise ConfigError(f"no C++ sources for kernel {kernel!r} in {kdir}; expected "
                          f"hls/{kernel}/*.cpp in the checkout")
    headers = sorted([*kdir.glob("*.h"), *(hls_dir / "include").rglob("*.h")])
    return sources, headers


def _cache_key(files: list[Path], hls_dir: Path, flags: list[str], version: str) -> str:
    h = hashlib.sha256()
    for part in (*flags, version):
        h.update(part.encode() + b"\0")
    for path in files:
        h.update(path.relative_to(hls_dir).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class BuildPlan:
    """How ``kernel`` is compiled, and where its library is cached (``path``)."""

    kernel: str
    hls_dir: Path
    compiler: str
    flags: tuple[str, ...]
    sources: tuple[Path, ...]
    key: str
    path: Path


def build_plan(kernel: str = "dcim", hls_dir: Path | None = None,
               cxx: str | None = None) -> BuildPlan:
    """The compiler, flags and sources of ``kernel`` and its place in the cache."""
    hls_dir = Path(hls_dir) if hls_dir is not None else project_root() / "hls"
    compiler = find_compiler(cxx)
    ap_types = ap_types_dir()
    sources, headers = kernel_files(kernel, hls_dir)
    flags = [*CXXFLAGS, *ARCH_FLAGS, f"-I{hls_dir / 'include'}", f"-I{hls_dir / kernel}",
             "-isystem", str(ap_types)]
    # the key holds the flags with the checkout's own paths made relative, so a copy of
    # hls/ elsewhere (a deployed runtime, a fresh clone) reuses the same library
    portable = [f.replace(str(hls_dir), "<hls>") for f in flags]
    key = _cache_key([*sources, *headers], hls_dir, portable, compiler_version(compiler))
    path = cache_dir() / "csim" / f"{kernel}-{key[:20]}.so"
    return BuildPlan(kernel, hls_dir, compiler, tuple(flags), tuple(sources), key, path)


def build_library(kernel: str = "dcim", hls_dir: Path | None = None,
                  cxx: str | None = None) -> BuildResult:
    """Compile ``kernel`` into a shared library, or reuse the cached one if it matches
    its checksum file.

    Safe to call from concurrent processes: each compiles into its own temporary file
    and renames it into place.
    """
    start = time.perf_counter()
    plan = build_plan(kernel, hls_dir, cxx)
    target = plan.path
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target.parent)
    if target.is_file():
        digest, problem = check_library(target)
        if not problem:
            return BuildResult(target, False, time.perf_counter() - start, plan.key, digest)
        log.warning("cached C simulation %s %s; rebuilding it", target, problem)
    for path in (target, checksum_file(target)):
        if path.is_dir():
            raise OutputError(f"the C-simulation cache holds a folder {path} where cimstack "
                              "keeps a file; move it away or set CIMSTACK_CACHE to another "
                              "folder")
    tmp = _private_file(target)
    try:
        try:
            proc = subprocess.run([plan.compiler, *plan.flags, *map(str, plan.sources),
                                   "-o", str(tmp)], capture_output=True, text=True,
                                  check=False, timeout=COMPILE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise CimstackError(f"compiling the {kernel} C simulation with {plan.compiler} "
                                f"did not finish within {COMPILE_TIMEOUT_S} s; check the "
                                "compiler and the machine's load") from None
        if proc.returncode != 0:
            raise CimstackError(
                f"compiling the {kernel} C simulation failed ({plan.compiler}, exit "
                f"{proc.returncode}); fix the sources under {plan.hls_dir / kernel}:\n"
                f"{proc.stderr[-4000:]}")
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        write_text_atomic(checksum_file(target), digest + "\n")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return BuildResult(target, True, time.perf_counter() - start, plan.key, digest)


def checksum_file(lib: Path) -> Path:
    """``<lib>.sha256``: the SHA-256 of ``lib`` recorded when it was built."""
    return lib.with_name(lib.name + ".sha256")


def check_library(lib: Path) -> tuple[str, str]:
    """(SHA-256 of ``lib``, what is wrong with it: '' when it matches its checksum file)."""
    digest = hashlib.sha256(lib.read_bytes()).hexdigest()
    try:
        recorded = checksum_file(lib).read_text().strip()
    except FileNotFoundError:
        return digest, "has no checksum file"
    except (OSError, UnicodeDecodeError) as exc:
        return digest, f"has an unreadable checksum file ({type(exc).__name__})"
    if digest != recorded:
        return digest, "does not match the checksum recorded when it was built (truncated?)"
    return digest, ""


def _private_file(lib: Path) -> Path:
    """A new empty file ``.<lib name>.<pid>.<random>`` beside ``lib``, for this process."""
    fd, path = tempfile.mkstemp(dir=lib.parent, prefix=f".{lib.name}.{os.getpid()}.")
    os.close(fd)
    return Path(path)


def _process_alive(pid: int) -> bool:
    if os.name == "nt":          # os.kill(pid, 0) would signal the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:              # exists but belongs to someone else, or no signals here
        return True
    return True


def _leftover(path: Path) -> bool:
    """Is ``path`` a temporary file of a process that is gone? Ours carry the pid
    (``.NAME.PID.RANDOM``); those of earlier versions (``.K-KEY-inst-R.so`` copies,
    ``.K-R.so.tmp`` compiler outputs) do not, and are judged by age alone."""
    parts = path.name.split(".")
    if len(parts) >= 4 and parts[-2].isdigit():
        return not _process_alive(int(parts[-2]))
    return "-inst-" in path.name or path.name.endswith(".so.tmp")


def remove_leftovers(folder: Path) -> None:
    """Delete what a crash during a compile or a load left in ``folder``: temporary
    files (private copies, compiler outputs, checksum files being written) of
    processes that are gone, once they are ``LEFTOVER_AGE_S`` old."""
    now = time.time()
    for path in folder.glob(".*.so*"):
        if not _leftover(path):
            continue
        try:
            if now - path.stat().st_mtime >= LEFTOVER_AGE_S:
                path.unlink()
        except FileNotFoundError:       # another process removed it first
            pass


def _load_private_copy(build: BuildResult) -> ctypes.CDLL:
    """dlopen a private copy of the library of ``build``, so its static state (the
    kernel's on-chip memories) belongs to this instance alone. The copy holds the bytes
    whose SHA-256 ``build`` checked; it is unlinked as soon as it is mapped."""
    data = build.path.read_bytes()
    if hashlib.sha256(data).hexdigest() != build.sha256:
        raise HardwareError(f"{build.path} changed while it was being loaded (another "
                            "process rebuilding the cache?); run the command again")
    copy = _private_file(build.path)
    try:
        copy.write_bytes(data)
        return ctypes.CDLL(str(copy))
    finally:
        copy.unlink()   # the mapping stays valid after unlinking


_U32P = ctypes.POINTER(ctypes.c_uint32)
_U64P = ctypes.POINTER(ctypes.c_uint64)
_U8P = ctypes.POINTER(ctypes.c_uint8)
_SIZEP = ctypes.POINTER(ctypes.c_size_t)


class CsimKernel:
    """One kernel instance in C simulation, with its own on-chip state.

    ``args`` map register names (``KernelDecl.registers``) to integers; registers left
    out are 0. Signed registers take negative values.
    """

    def __init__(self, kernel: KernelDecl | str = "dcim", hls_dir: Path | None = None,
                 cxx: str | None = None):
        self.decl = KERNELS[kernel] if isinstance(kernel, str) else kernel
        self.build = build_library(self.decl.name, hls_dir, cxx)
        lib = _load_private_copy(self.build)
        prefix = f"cimstack_{self.decl.name}_"
        self._needed = getattr(lib, prefix + "words_needed")
        self._out = getattr(lib, prefix + "words_out")
        self._run = getattr(lib, prefix + "run")
        for fn in (self._needed, self._out):
            fn.argtypes = [_U32P]
            fn.restype = ctypes.c_longlong
        self._run.argtypes = [_U32P, _U64P, _U8P, ctypes.c_size_t, _SIZEP,
                              _U64P, _U8P, ctypes.c_size_t, _SIZEP]
        self._run.restype = ctypes.c_int
        self._lib = lib
        self._out_words: np.ndarray | None = None   # output buffers, see _out_buffers
        self._out_flags: np.ndarray | None = None

    def args_array(self, args: Mapping[str, int]) -> np.ndarray:
        """Registers in top-function order as uint32 (two's complement if signed)."""
        names = [r.name for r in self.decl.registers]
        unknown = sorted(set(args) - set(names))
        if unknown:
            raise ConfigError(f"kernel {self.decl.name} has no register(s) {unknown}; "
                              f"registers: {names}")
        out = np.zeros(len(names), np.uint32)
        for i, reg in enumerate(self.decl.registers):
            value = int(args.get(reg.name, 0))
            lo, hi = (-(1 << 31), (1 << 31) - 1) if reg.signed else (0, (1 << 32) - 1)
            if not lo <= value <= hi:
                raise ConfigError(f"{self.decl.name}.{reg.name} = {value} does not fit a "
                                  f"32-bit register: allowed [{lo}, {hi}]")
            out[i] = value & 0xFFFFFFFF
        return out

    def _count(self, fn, args: Mapping[str, int]) -> int:
        regs = self.args_array(args)
        n = fn(regs.ctypes.data_as(_U32P))
        if n < 0:
            raise ConfigError(f"{self.decl.name} registers out of the kernel's range: "
                              f"{dict(args)}; capacity {self.decl.capacity}, see "
                              "overlay_shape.py for each register's range")
        return int(n)

    def words_needed(self, args: Mapping[str, int]) -> int:
        """Input stream words the call with these registers reads."""
        return self._count(self._needed, args)

    def words_out(self, args: Mapping[str, int]) -> int:
        """Output stream words the call with these registers writes."""
        return self._count(self._out, args)

    def run(self, args: Mapping[str, int], in_words: np.ndarray,
            in_last: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """Run one call on the head of the input stream.

        Returns (words consumed, output words uint64, output TLAST flags bool). When
        fewer than :meth:`words_needed` words are given nothing is consumed and nothing
        is produced (the hardware would still be waiting for data).
        """
        regs = self.args_array(args)
        data = np.ascontiguousarray(in_words, dtype=np.uint64)
        last = np.ascontiguousarray(in_last, dtype=np.uint8)
        if data.shape != last.shape or data.ndim != 1:
            raise ValueError(f"in_words {data.shape} and in_last {last.shape} must be "
                             "1-D arrays of the same length")
        cap = self.words_out(args)
        out, out_last = self._out_buffers(cap)
        consumed, produced = ctypes.c_size_t(0), ctypes.c_size_t(0)
        rc = self._run(regs.ctypes.data_as(_U32P), data.ctypes.data_as(_U64P),
                       last.ctypes.data_as(_U8P), data.size, ctypes.byref(consumed),
                       out.ctypes.data_as(_U64P), out_last.ctypes.data_as(_U8P), cap,
                       ctypes.byref(produced))
        if rc == ERR_INPUT:
            return 0, out[:0], out_last[:0].astype(bool)
        if rc != OK:
            raise HardwareError(f"{self.decl.name} C simulation call failed with code {rc} "
                                f"(registers {dict(args)}, {data.size} input words)")
        n = produced.value
        return int(consumed.value), out[:n].copy(), out_last[:n].astype(bool)

    def _out_buffers(self, cap: int) -> tuple[np.ndarray, np.ndarray]:
        """Output buffers of at least ``cap`` words, kept from call to call: a call's
        cap is its worst case (every neuron of an snn slice spiking: up to the driver's
        16 MiB answer budget), far above what it writes, so it is not allocated anew for
        every call; the words written are copied out."""
        if self._out_words is None or self._out_words.size < cap:
            self._out_words = np.zeros(max(cap, 64), np.uint64)
            self._out_flags = np.zeros(max(cap, 64), np.uint8)
        return self._out_words, self._out_flags


def csim_workers() -> int:
    """Copies of a splittable kernel: ``CIMSTACK_CSIM_WORKERS`` if set, else the cores
    this process may use (:func:`~cimstack.threads.usable_cores`), at most
    ``DEFAULT_MAX_WORKERS``."""
    value = os.environ.get(WORKERS_ENV, "").strip()
    if not value:
        return min(usable_cores(), DEFAULT_MAX_WORKERS)
    if not value.isdigit() or not 1 <= int(value) <= MAX_WORKERS:
        raise ConfigError(f"{WORKERS_ENV}={value!r} is not a number of C-simulation "
                          f"workers; set it to an integer 1..{MAX_WORKERS} (1 = one "
                          "copy of each kernel) or unset it")
    return int(value)


def csim_kernel(kernel: KernelDecl | str = "dcim", workers: int | None = None,
                hls_dir: Path | None = None,
                cxx: str | None = None) -> CsimKernel | ParallelCsimKernel:
    """The C simulation the emulated device runs for ``kernel``: a
    :class:`ParallelCsimKernel` of ``workers`` copies (default :func:`csim_workers`)
    when the kernel declares a ``vector_mode`` and ``workers`` > 1, else a
    :class:`CsimKernel`."""
    decl = KERNELS[kernel] if isinstance(kernel, str) else kernel
    workers = csim_workers() if workers is None else workers
    if decl.vector_mode is None or workers <= 1:
        return CsimKernel(decl, hls_dir, cxx)
    return ParallelCsimKernel(decl, workers, hls_dir, cxx)


class ParallelCsimKernel:
    """One kernel instance in C simulation on ``workers`` private :class:`CsimKernel`
    copies, with the interface of :class:`CsimKernel` and the same results.

    A call in the kernel's ``vector_mode`` with at least two vectors and
    ``2 * min_part_words`` input words runs as up to ``workers`` contiguous vector
    ranges of about ``min_part_words`` words or more, one per copy, concurrently on the
    shared thread pool of :mod:`cimstack.threads` (ctypes releases the GIL during the
    foreign call, so the copies run on the host's cores at once); the input words are split at vector
    boundaries, the outputs concatenated in order, and the TLAST every part but the last
    sets on its last word is cleared, so the call writes TLAST once, on its last word,
    as one call does. This gives one call's words because each vector's outputs depend
    only on the registers and on the state the other modes loaded, never on the call's
    other vectors: in the dcim kernel (hls/dcim/dcim_top.cpp, mode 2) the exact path
    fully rewrites a vector's input planes (unpack_input clears each plane word at its
    first byte) and sets each accumulator at its channel's first step before adding to
    it; the ADC path clears its accumulators per vector, and its block table
    (prepare_blocks) is a function of the loaded weights, k_rows and rows_on, rebuilt by
    each copy that meets a new geometry; lane_x / lane_p / lane_v are written before
    they are read in every step.

    In the snn kernel (mode 4 with ``n_samples`` >= 1) a vector is a sample: ``n_steps``
    event packets of any length (the words split where a sample's first packet opens,
    :func:`~cimstack.events.wire.packet_opens`), and each sample starts from membranes
    set to v_init, so its spikes depend on the loaded weights, the registers and its own
    packets alone.

    The first copy runs the last part, so it ends in the state one call leaves (the
    snn kernel's membranes after the last sample); the other copies' state after a
    split call is never read: every other call (loads of weights, clears, requantizer,
    reads) runs on every copy, concurrently, and answers with the first copy's words,
    and shorter vector calls, and calls given too few input words (refused: nothing
    consumed, nothing written), run on the first copy alone.
    """

    def __init__(self, kernel: KernelDecl | str, workers: int, hls_dir: Path | None = None,
                 cxx: str | None = None, min_part_words: int = MIN_PART_WORDS):
        self.decl = KERNELS[kernel] if isinstance(kernel, str) else kernel
        if self.decl.vector_mode is None:
            raise ConfigError(f"kernel {self.decl.name} declares no vector_mode, so its "
                              "calls cannot be split; use CsimKernel")
        if workers < 2:
            raise ConfigError(f"a ParallelCsimKernel needs at least 2 workers, not "
                              f"{workers}; use CsimKernel for one")
        self.copies = [CsimKernel(self.decl, hls_dir, cxx) for _ in range(workers)]
        self.build = self.copies[0].build
        self._vector_mode = self.decl.modes[self.decl.vector_mode]
        self.min_part_words = max(1, min_part_words)

    @property
    def workers(self) -> int:
        return len(self.copies)

    def args_array(self, args: Mapping[str, int]) -> np.ndarray:
        """As :meth:`CsimKernel.args_array`."""
        return self.copies[0].args_array(args)

    def words_needed(self, args: Mapping[str, int]) -> int:
        """As :meth:`CsimKernel.words_needed`."""
        return self.copies[0].words_needed(args)

    def words_out(self, args: Mapping[str, int]) -> int:
        """As :meth:`CsimKernel.words_out`."""
        return self.copies[0].words_out(args)

    def _on_copies(self, calls: list[tuple[Mapping[str, int], np.ndarray, np.ndarray]]):
        """Results of ``calls[i]`` run on copy i, at once on the host's cores
        (:func:`~cimstack.threads.map_on_cores`; they make no BLAS call), all finished
        before this returns; the first error is raised."""
        return map_on_cores(lambda job: job[0].run(*job[1]), list(zip(self.copies, calls)),
                            blas=False)

    def _vector_starts(self, args: Mapping[str, int], in_words: np.ndarray, n_vec: int,
                       need: int) -> list[int] | None:
        """The input word where each of the call's ``n_vec`` vectors starts, and ``need``
        (its words) after the last; None when the words do not open with ``n_vec``
        vectors of event packets."""
        if self.decl.vector_packets is None:
            per_vec = self.words_needed({**args, self.decl.vector_count: 1})
            if per_vec * n_vec != need:
                raise HardwareError(f"{self.decl.name} mode {self.decl.vector_mode} reads "
                                    f"{need} words for {n_vec} vectors, not {per_vec} per "
                                    "vector, so its calls cannot be split; remove its "
                                    "vector_mode in overlay_shape.py")
            return [v * per_vec for v in range(n_vec)] + [need]
        per_vec = int(args.get(self.decl.vector_packets, 0))
        opens = np.flatnonzero(packet_opens(in_words[:need]))
        if per_vec < 1 or opens.size < n_vec * per_vec or opens[0] != 0:
            return None
        return opens[:n_vec * per_vec:per_vec].tolist() + [need]

    def run(self, args: Mapping[str, int], in_words: np.ndarray,
            in_last: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """As :meth:`CsimKernel.run`: one call on the head of the input stream."""
        if int(args.get("mode", 0)) != self._vector_mode:
            return self._on_copies([(args, in_words, in_last)] * self.workers)[0]
        n_vec = int(args.get(self.decl.vector_count, 0))
        need = self.words_needed(args)
        parts = min(self.workers, n_vec, need // self.min_part_words)
        if parts < 2 or np.shape(in_words) != np.shape(in_last) or np.size(in_words) < need:
            return self.copies[0].run(args, in_words, in_last)
        starts = self._vector_starts(args, in_words, n_vec, need)
        if starts is None:                   # not n_vec whole vectors: the kernel decides
            return self.copies[0].run(args, in_words, in_last)
        bounds = [n_vec * i // parts for i in range(parts + 1)]
        calls = []
        for lo, hi in pairwise(bounds):
            w0, w1 = starts[lo], starts[hi]
            part = {**args, self.decl.vector_count: hi - lo}
            if self.decl.words_register:
                part[self.decl.words_register] = w1 - w0
            calls.append((part, in_words[w0:w1], in_last[w0:w1]))
        results = self._on_copies(calls[::-1])[::-1]     # the first copy runs the last
        out_last = [last for _, _, last in results]   # fresh arrays (CsimKernel.run)
        for last in out_last[:-1]:
            last[-1:] = False
        return (sum(consumed for consumed, _, _ in results),
                np.concatenate([words for _, words, _ in results]), np.concatenate(out_last))
