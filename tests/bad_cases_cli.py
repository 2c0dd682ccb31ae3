"""Bad command lines of ``cimstack run`` / ``verify`` / ``demo`` with dcim and SNN
bundles: backends that make no sense for a command, options a bundle kind does not
take, report folders that cannot be written."""

from __future__ import annotations

from badcase import Case
from bad_cases_data import _snn, _snn_net
from conftest import digits_like_bundle
from cimstack.bundle import save_bundle


def _dcim(folder, *args):
    save_bundle(digits_like_bundle(), folder / "b")
    return [args[0], "b", *args[1:]]


def _snn_args(folder, *args):
    """A tiny SNN bundle ``s`` in ``folder``; ``args`` is the command line (no data read)."""
    _snn(folder, _snn_net())
    return list(args)


def _report_is_a_file(folder):
    (folder / "rep").write_text("my notes\n")
    return _dcim(folder, "verify", "--report", "rep", "--limit", "2")


CASES = [
    Case("cli-verify-reference", lambda f: _dcim(f, "verify", "--backend", "reference"),
         r"--backend reference: the reference cannot be verified against itself; "
         r"choose one of emu, board, auto$"),
    Case("cli-verify-unknown-backend", lambda f: _dcim(f, "verify", "--backend", "gpu"),
         r"unknown backend 'gpu'; choose one of emu, board, auto$"),
    Case("cli-snn-verify-reference", lambda f: _snn_args(f, "snn", "verify", "s", "--backend",
                                                         "reference"),
         r"cannot be verified against itself; choose one of csim, emu, board, auto$"),
    Case("cli-demo-reference", lambda f: ["demo", "--backend", "reference", "--out", "o"],
         r"--backend reference: the reference cannot be verified against itself"),
    Case("cli-snn-demo-reference", lambda f: _snn_args(f, "snn", "demo", "--bundle", "s",
                                                       "--backend", "reference"),
         r"choose one of csim, emu, board, auto$"),
    Case("cli-run-snn-on-board-flag", lambda f: _snn_args(f, "run", "s", "--board", "/dev/ttyUSB9"),
         r"--board deploys dcim and acim bundles; run an SNN bundle with --backend"),
    Case("cli-verify-snn-on-board-flag",
         lambda f: _snn_args(f, "verify", "s", "--board", "/dev/ttyUSB9"),
         r"--board verifies dcim and acim bundles; verify an SNN bundle with --backend"),
    Case("cli-verify-report-is-a-file", _report_is_a_file,
         r"--report rep is a file; .*give a folder name"),
    Case("cli-snn-verify-report-is-a-file",
         lambda f: (f / "rep").write_text("x") and _snn_args(f, "verify", "s", "--report", "rep"),
         r"--report rep is a file"),
    Case("cli-run-snn-board-no-device", lambda f: _snn_args(f, "run", "s", "--backend", "board"),
         r"backend 'board' needs a PYNQ board"),
]
