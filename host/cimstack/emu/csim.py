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
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import CimstackError, ConfigError, HardwareError, ToolMissing
from ..overlay_shape import KERNELS, KernelDecl
from ..paths import cache_dir, project_root

CXXFLAGS = ("-O2", "-std=c++17", "-shared", "-fPIC")
# x86-64 popcount is an extension (present on every x86-64 CPU since 2008); the kernels'
# bit-serial column reads are popcounts.
ARCH_FLAGS = ("-mpopcnt",) if platform.machine().lower() in ("x86_64", "amd64") else ()

# Return codes of cimstack_<kernel>_run (hls/include/cimstack/csim_bridge.h).
OK, ERR_ARGS, ERR_INPUT, ERR_OUTPUT, ERR_PROTOCOL = 0, -1, -2, -3, -4


@dataclass(frozen=True)
class BuildResult:
    """A compiled kernel library: where it is, whether this call compiled it, how long
    the call took (compile or cache hit), and the cache key."""

    path: Path
    rebuilt: bool
    seconds: float
    key: str


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
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
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


def build_library(kernel: str = "dcim", hls_dir: Path | None = None,
                  cxx: str | None = None) -> BuildResult:
    """Compile ``kernel`` into a shared library, or reuse the cached one.

    Safe to call from concurrent processes: each compiles into its own temporary file
    and renames it into place.
    """
    start = time.perf_counter()
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
    out_dir = cache_dir() / "csim"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{kernel}-{key[:20]}.so"
    if target.is_file():
        return BuildResult(target, False, time.perf_counter() - start, key)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{kernel}-", suffix=".so.tmp")
    os.close(fd)
    try:
        proc = subprocess.run([compiler, *flags, *map(str, sources), "-o", tmp],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise CimstackError(
                f"compiling the {kernel} C simulation failed ({compiler}, exit "
                f"{proc.returncode}); fix the sources under {hls_dir / kernel}:\n"
                f"{proc.stderr[-4000:]}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return BuildResult(target, True, time.perf_counter() - start, key)


def _load_private_copy(lib: Path) -> ctypes.CDLL:
    """dlopen a private copy of ``lib`` so its static state (the kernel's on-chip
    memories) belongs to this instance alone."""
    fd, copy = tempfile.mkstemp(dir=lib.parent, prefix=f".{lib.stem}-inst-", suffix=".so")
    os.close(fd)
    try:
        shutil.copyfile(lib, copy)
        return ctypes.CDLL(copy)
    finally:
        os.unlink(copy)   # the mapping stays valid after unlinking


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
        lib = _load_private_copy(self.build.path)
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
        out = np.zeros(cap, np.uint64)
        out_last = np.zeros(cap, np.uint8)
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
        return int(consumed.value), out[:n], out_last[:n].astype(bool)
