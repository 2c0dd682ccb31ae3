"""Configuration: defaults, board facts, and errors naming field, value and range."""

import pytest

from cimstack.config import DcimSpec, load_board
from cimstack.errors import ConfigError


def test_board_facts_from_toml():
    board = load_board("pynq-z2")
    assert board.part == "xc7z020clg400-1"
    assert board.clocks.fclk0_mhz == 100.0
    assert board.memory.hp_port == "S_AXI_HP0" and board.memory.hp_width_bits == 64
    assert (board.resources.lut, board.resources.ff, board.resources.bram36,
            board.resources.dsp) == (53200, 106400, 140, 220)
    assert board.serial.baudrate == 115200 and board.serial.user == "xilinx"


@pytest.mark.parametrize("kwargs, match", [
    (dict(rows_on=300), r"rows_on = 300 is out of range: allowed \[1, rows=256\]"),
    (dict(rows=-4), r"rows = -4 is out of range: allowed \[1, 4096\]"),
    (dict(cols=0), r"cols = 0 is out of range"),
    (dict(psum_bits=0), r"psum_bits = 0 is out of range: allowed \[1, 16\]"),
    (dict(psum_mode="round"), r"psum_mode = 'round' is not allowed: choose one of"),
    (dict(rows_on=24), r"rows_on = 24 must divide rows = 256"),
    (dict(macros=2.5), r"macros = 2.5 must be an integer"),
])
def test_invalid_dcim_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        DcimSpec(**kwargs)


def test_unknown_keys_are_named():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['row'\]; allowed keys"):
        DcimSpec.from_dict({"row": 4})


def test_unknown_board(tmp_path):
    with pytest.raises(ConfigError, match="unknown board 'zcu999'.*known boards: .*pynq-z2"):
        load_board("zcu999")


def test_bad_board_toml(tmp_path, monkeypatch):
    (tmp_path / "boards" / "bad").mkdir(parents=True)
    (tmp_path / "boards" / "bad" / "board.toml").write_text(
        'name = "bad"\n[clocks]\nfclk0_mhz = -5.0\n')
    monkeypatch.setenv("CIMSTACK_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match=r"fclk0_mhz = -5.0 is out of range"):
        load_board("bad")
