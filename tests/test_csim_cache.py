"""Build cache of the C-simulation libraries and the missing-tool errors."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

from cimstack.emu import csim
from cimstack.errors import ToolMissing
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
