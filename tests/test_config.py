"""Configuration: defaults, board facts, and errors naming field, value and range."""

import dataclasses

import pytest

from cimstack.config import (ZYNQ7_GP0, ZYNQ7_GP1, AcimSpec, DcimSpec, MemoryFacts,
                             SerialFacts, SnnSpec, boards_dir, check_range, load_board)
from cimstack.errors import ConfigError
from cimstack.overlay_shape import check_handoff, hwh_part, overlay_shape


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


# ------------------------------------------------------------- NaN, types, addresses

@pytest.mark.parametrize("make, match", [
    (lambda: AcimSpec(sigma=float("nan")), r"AcimSpec\.sigma = nan is not a finite number"),
    (lambda: AcimSpec(sigma=float("-inf")), r"AcimSpec\.sigma = -inf is not a finite number"),
    (lambda: SnnSpec(clock_mhz=float("inf")), r"clock_mhz = inf is not a finite number"),
    (lambda: SnnSpec(clock_mhz="100"), r"clock_mhz = '100' must be a number"),
    (lambda: DcimSpec(rows=True), r"rows = True must be an integer"),
    (lambda: AcimSpec(adc_per_input_bit=1), r"adc_per_input_bit = 1 is not allowed"),
    (lambda: MemoryFacts(hp_width_bits=64.0), r"hp_width_bits = 64\.0 is not allowed"),
    (lambda: SerialFacts(user=5), r"SerialFacts\.user = 5 must be a string"),
    (lambda: SerialFacts(usb_pids=[0x6010, 70000]), r"usb_pids\[\] = 70000 is out of range"),
])
def test_nan_and_wrong_types_are_refused(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_check_range_refuses_nan_for_any_bounds():
    for lo, hi in ((None, None), (0, None), (None, 1.0), (0.0, 1.0)):
        with pytest.raises(ConfigError, match="not a finite number"):
            check_range("x", float("nan"), lo, hi, integer=False)
    check_range("x", 0.5, 0.0, 1.0, integer=False, below_hi=True)
    with pytest.raises(ConfigError, match=r"allowed \[0\.0, 1\.0\)"):
        check_range("x", 1.0, 0.0, 1.0, integer=False, below_hi=True)


@pytest.mark.parametrize("kwargs, match", [
    (dict(ddr_size=0x40000000 + 0x1000), r"outside the DDR window 0x00000000-0x3FFFFFFF"),
    (dict(ddr_base=0x3FF00000, ddr_size=0x200000), r"outside the DDR window"),
    (dict(pl_gp0_base=0x3FFFF000, pl_gp0_size=0x2000), r"outside the M_AXI_GP0 window"),
    (dict(pl_gp0_base=0x7FFFF000, pl_gp0_size=0x2000), r"outside the M_AXI_GP0 window "
                                                       r"0x40000000-0x7FFFFFFF"),
    (dict(pl_gp0_base=0x43C00010, pl_gp0_size=0x1000), r"pl_gp0_base = 0x43C00010 is not a "
                                                       r"multiple of 4 KiB"),
])
def test_zynq7000_address_map(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MemoryFacts(**kwargs)


def test_addresses_inside_the_windows_are_kept():
    mem = MemoryFacts(ddr_size=0x40000000, pl_gp0_base=0x43C00000, pl_gp0_size=0x100000)
    assert (mem.ddr_size, mem.pl_gp0_base) == (0x40000000, 0x43C00000)
    assert ZYNQ7_GP0 == (0x40000000, 0x80000000) and ZYNQ7_GP1 == (0x80000000, 0xC0000000)


def test_overlay_ip_windows_are_checked():
    shape = overlay_shape("pynq-z2")
    names = [w[0] for w in shape.windows()]
    assert names == ["dcim_0", "dcim_dma", "acim_0", "acim_dma", "snn_0", "snn_dma"]
    slot = shape.slots[0]
    overlap = dataclasses.replace(shape.slots[1], base=slot.base + 0x8000)
    with pytest.raises(ConfigError, match=r"acim_0: base 0x43C08000 is not aligned"):
        dataclasses.replace(shape, slots=(slot, overlap)).check_addresses()
    unaligned = dataclasses.replace(slot, base=slot.base + 0x1000)
    with pytest.raises(ConfigError, match=r"base 0x43C01000 is not aligned to its address "
                                          r"range 0x10000"):
        dataclasses.replace(shape, slots=(unaligned,)).check_addresses()
    touching = dataclasses.replace(shape.slots[1], base=slot.base, dma=shape.slots[1].dma)
    with pytest.raises(ConfigError, match=r"overlay IPs dcim_0 .* and acim_0 .* overlap"):
        dataclasses.replace(shape, slots=(slot, touching)).check_addresses()


def test_board_from_a_path_equals_the_named_board(tmp_path):
    text = (boards_dir() / "pynq-z2" / "board.toml").read_text()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "board.toml").write_text(text)
    assert load_board(str(tmp_path / "b")) == load_board("pynq-z2")
    assert load_board(str(tmp_path / "b" / "board.toml")) == load_board("pynq-z2")
    (tmp_path / "b" / "board.toml").write_text(text.replace("fclk0_mhz = 100.0",
                                                            "fclk0_mhz = 50.0"))
    assert overlay_shape(str(tmp_path / "b" / "board.toml")).fclk0_mhz == 50.0   # re-read


def test_the_generated_hwh_names_the_board_part(tmp_path):
    from cimstack.emu.hwh import write_overlay
    bit = write_overlay("pynq-z2", tmp_path)
    assert hwh_part(bit.with_suffix(".hwh")) == "xc7z020clg400-1"
    assert check_handoff(bit) == bit.with_suffix(".hwh")


# ------------------------------------------------------------------- numeric flags

def _numeric_options():
    """(command path, option) of every int or float option of every command."""
    import typer

    from cimstack.cli import app

    def walk(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, path + [name])
            return
        for p in cmd.params:
            if p.param_type_name == "option" and str(p.bare_type()) in ("int", "float"):
                yield path, p
    return list(walk(typer.main.get_command(app), []))


def test_every_numeric_flag_has_a_check():
    options = _numeric_options()
    assert len(options) >= 30
    unchecked = [f"{' '.join(path)} {p.opts[0]}" for path, p in options
                 if (p.min is None and p.callback is None)]
    assert not unchecked, f"numeric flags without a range or a check: {unchecked}"


def test_every_numeric_flag_refuses_a_bad_value(tmp_path):
    from badcase import run_cli
    for path, p in _numeric_options():
        bad = "nan" if str(p.bare_type()) == "float" else str(p.min - 1)
        args = [*path, *(["x"] if path[-1] in ("verify", "exec", "export") else []),
                p.opts[0], bad]
        code, out = run_cli(args, tmp_path)
        assert code == 2 and p.opts[0] in out and "Traceback" not in out, (args, out)
    assert not any(tmp_path.iterdir()), "a refused flag still wrote files"


def test_digits_layers_matches_the_model():
    from cimstack.cli import DIGITS_LAYERS
    from cimstack.quant.model import NUM_LAYERS
    assert DIGITS_LAYERS == NUM_LAYERS
