"""Build cache of the C-simulation libraries and the missing-tool errors."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time

import pytest

from cimstack.emu import csim
from cimstack.errors import HardwareError, OutputError, ToolMissing
from cimstack.paths import project_root


@pytest.fixture
def hls_copy(tmp_path, monkeypatch):
    """A private copy of the dcim sources and an empty cache."""
    src = project_root() / "hls"
    dst = tmp_path / "hls"
    for part in ("include", "dcim"):
        shutil.copytree(src / part, dst / part)
    monkeypatch.setenv("CIMSTACK_CACHE", str(tmp_path / "cache"))
    return dst


def test_cache_reuses_and_rebuilds(hls_copy):
    cold = csim.build_library("dcim", hls_copy)
    assert cold.rebuilt and cold.path.is_file()
    warm = csim.build_library("dcim", hls_copy)
    assert not warm.rebuilt and warm.path == cold.path
    assert warm.seconds < cold.seconds

    header = hls_copy / "include" / "cimstack" / "requant.h"
    os.utime(header)                                  # same contents: still cached
    assert not csim.build_library("dcim", hls_copy).rebuilt

    header.write_text(header.read_text() + "\n// changed\n")
    changed = csim.build_library("dcim", hls_copy)
    assert changed.rebuilt and changed.path != cold.path
    assert not csim.build_library("dcim", hls_copy).rebuilt


def test_testbench_is_not_part_of_the_library(hls_copy):
    first = csim.build_library("dcim", hls_copy)
    tb = hls_copy / "dcim" / "tb_dcim.cpp"
    tb.write_text(tb.read_text() + "\n// changed\n")
    assert csim.build_library("dcim", hls_copy).path == first.path


def test_missing_compiler(hls_copy, monkeypatch, tmp_path):
    with pytest.raises(ToolMissing, match="g\\+\\+"):
        csim.build_library("dcim", hls_copy, cxx="no-such-compiler-g++")
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolMissing, match="apt-get install g\\+\\+"):
        csim.build_library("dcim", hls_copy)


def test_missing_hls4ml(hls_copy, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "hls4ml" else real(name, *a))
    with pytest.raises(ToolMissing, match="pip install hls4ml"):
        csim.build_library("dcim", hls_copy)


# ------------------------------------------------ checksums and private copies

REGS = dict(k_rows=16, n_out=4, w_bits=4, x_bits=4, rows_on=8, mode=2, n_vec=2)


@pytest.fixture(scope="module")
def built_cache(tmp_path_factory):
    """A cache holding the dcim library, built once for this module."""
    folder = tmp_path_factory.mktemp("built-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIMSTACK_CACHE", str(folder))
        csim.build_library("dcim")
    return folder


@pytest.fixture
def cache(built_cache, tmp_path, monkeypatch):
    """A private copy of ``built_cache`` as CIMSTACK_CACHE; returns its csim folder."""
    shutil.copytree(built_cache, tmp_path / "cache")
    monkeypatch.setenv("CIMSTACK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "csim"


def library(cache):
    (lib,) = cache.glob("dcim-*.so")
    return lib


def test_build_records_the_checksum(cache):
    build = csim.build_library("dcim")
    assert not build.rebuilt and build.path == library(cache)
    digest = hashlib.sha256(build.path.read_bytes()).hexdigest()
    assert build.sha256 == digest
    assert csim.checksum_file(build.path).read_text() == digest + "\n"


def test_check_library_names_what_is_wrong(cache):
    lib = library(cache)
    sidecar = csim.checksum_file(lib)
    assert csim.check_library(lib)[1] == ""
    good = sidecar.read_text()
    sidecar.write_text("0" * 64 + "\n")
    assert "does not match" in csim.check_library(lib)[1]
    sidecar.unlink()
    assert csim.check_library(lib)[1] == "has no checksum file"
    sidecar.mkdir()
    assert "unreadable checksum file" in csim.check_library(lib)[1]
    sidecar.rmdir()
    sidecar.write_text(good)
    os.truncate(lib, lib.stat().st_size // 2)
    assert "does not match" in csim.check_library(lib)[1]


def test_truncated_library_is_rebuilt_instead_of_crashing(cache):
    """The bug: a truncated cached library killed the process with SIGBUS when mapped.
    Loaded in a child process, so a regression cannot take pytest down with it."""
    lib = library(cache)
    expected = csim.CsimKernel("dcim").words_needed(REGS)
    os.truncate(lib, lib.stat().st_size // 2)
    code = ("from cimstack.emu.csim import CsimKernel\n"
            f"print(CsimKernel('dcim').words_needed({REGS!r}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, check=False)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr}"
    assert out.stdout.split() == [str(expected)]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not match the checksum" in lines[0], out.stderr
    assert "rebuilding it" in lines[0]
    assert csim.check_library(lib)[1] == ""
    assert sorted(p.name for p in cache.iterdir()) == [lib.name, lib.name + ".sha256"]


def test_library_changed_after_the_check_is_not_loaded(cache):
    build = csim.build_library("dcim")
    os.truncate(build.path, build.path.stat().st_size // 2)
    with pytest.raises(HardwareError, match="changed while it was being loaded"):
        csim._load_private_copy(build)
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]


def test_private_copies_do_not_stay_behind(cache):
    before = sorted(p.name for p in cache.iterdir())
    kernels = [csim.CsimKernel("dcim") for _ in range(3)]
    assert all(k.words_needed(REGS) == kernels[0].words_needed(REGS) for k in kernels)
    assert sorted(p.name for p in cache.iterdir()) == before


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_crashed_processes_are_removed(cache):
    lib = library(cache)
    dead, old = dead_pid(), time.time() - 2 * csim.LEFTOVER_AGE_S
    names = {
        f".{lib.name}.{dead}.abc123": False,            # a crashed load: removed
        f".{lib.name}.sha256.{dead}.abc123": False,     # a crashed checksum write
        f".{lib.name}.{os.getpid()}.abc123": True,      # this process: kept
        ".dcim-0123-inst-xyz.so": False,                # an earlier version's copy
        "notes.so.txt": True,                           # not ours: kept
    }
    for name in names:
        (cache / name).write_bytes(b"x")
        os.utime(cache / name, (old, old))
    young = cache / f".{lib.name}.{dead}.young1"            # maybe still being written
    young.write_bytes(b"x")
    csim.build_library("dcim")
    for name, kept in names.items():
        assert (cache / name).exists() == kept, name
    assert young.exists()


def test_folder_where_the_library_belongs_is_refused(cache):
    lib = library(cache)
    lib.unlink()
    lib.mkdir()
    (lib / "mine.txt").write_text("user data")
    with pytest.raises(OutputError, match="holds a folder .* where cimstack keeps a file"):
        csim.build_library("dcim")
    assert (lib / "mine.txt").read_text() == "user data"
