"""Typer sub-apps for the board and the overlay, and the deploy / run-on-board commands.

Mounted by the main CLI:

    from cimstack.deploy.cli import board_app, overlay_app, deploy_command, run_board_command
    app.add_typer(board_app, name="board")        # cimstack board find | exec | ip
    app.add_typer(overlay_app, name="overlay")    # cimstack overlay info | build | tcl
    app.command("deploy")(deploy_command)         # cimstack deploy --board PORT_OR_HOST
    # cimstack run BUNDLE --board PORT_OR_HOST [board options]: the `run` command calls
    # run_board_command(..., options=board_options(...)) with the same option set.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import CimstackError
from ..flags import seconds
from ..report.console import console

board_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="The PYNQ board over its serial console: find, exec, ip.")
overlay_app = typer.Typer(add_completion=False, no_args_is_help=True,
                          help="The overlay: shape, resource estimate, Vivado build.")

PORT_HELP = "serial port of the board (default: the first PYNQ-Z2 found)"


def _port(port: Optional[str], board: str) -> str:
    if port:
        return port
    from .ports import candidate_ports
    found = candidate_ports(board)
    if not found:
        raise CimstackError(f"no serial port looks like a {board} (FTDI USB-UART): plug the "
                            "micro-USB cable into the PROG/UART port, power the board, or "
                            "pass --port")
    return found[0].device


# --------------------------------------------------------------------- board

@board_app.command("find")
def board_find(board: str = typer.Option("pynq-z2", help="board folder under boards/"),
               probe: bool = typer.Option(True, help="send a CR and see what answers"),
               json_out: bool = typer.Option(False, "--json", help="print JSON")):
    """List serial ports that look like the board's USB-UART (and probe them)."""
    from .ports import find_boards
    found = find_boards(board, probe=probe)
    if json_out:
        print(json.dumps([f.to_dict() for f in found], indent=2))
        return
    if not found:
        console.print(f"no {board} found (FTDI VID/PID from boards/{board}/board.toml); "
                      "is the board powered and the PROG/UART micro-USB cable plugged in?")
        raise typer.Exit(1)
    t = Table(title=f"{board} serial ports")
    for col in ("port", "description", "serial", "USB interface", "probe"):
        t.add_column(col)
    for f in found:
        t.add_row(f.device, f.description, f.serial_number or "",
                  "" if f.interface is None else f"{f.interface}" +
                  (" (UART)" if f.interface == 1 else ""), f.probe or "-")
    console.print(t)


@board_app.command("exec")
def board_exec(command: str = typer.Argument(..., help="shell command to run on the board"),
               port: Optional[str] = typer.Option(None, help=PORT_HELP),
               board: str = typer.Option("pynq-z2"),
               user: Optional[str] = typer.Option(None, help="login user (default xilinx)"),
               password: Optional[str] = typer.Option(None, help="password (default xilinx)"),
               timeout: float = typer.Option(60.0, help="seconds before Ctrl-C",
                                             callback=seconds()),
               login_timeout: float = typer.Option(30.0, callback=seconds())):
    """Log in over the serial console, run COMMAND, print its output, exit with its status."""
    from .console import SerialConsole
    with SerialConsole.open(_port(port, board), board, user, password) as con:
        con.login(login_timeout)
        r = con.exec(command, timeout=timeout)
    sys.stdout.write(r.output if r.output.endswith("\n") or not r.output else r.output + "\n")
    raise typer.Exit(r.status)


@board_app.command("ip")
def board_ip_cmd(port: Optional[str] = typer.Option(None, help=PORT_HELP),
                 board: str = typer.Option("pynq-z2"),
                 check_ssh: bool = typer.Option(True, help="also test the ssh port")):
    """Read the board's IPv4 address over the serial console."""
    from ..config import load_board
    from .console import SerialConsole
    from .remote import board_ip
    from .ssh import tcp_reachable
    with SerialConsole.open(_port(port, board), board) as con:
        con.login()
        ip = board_ip(con)
    if ip is None:
        console.print(f"the board has no IPv4 address (no network, or no DHCP: with a direct "
                      f"cable it takes {load_board(board).serial.fallback_ip})")
        raise typer.Exit(1)
    print(ip)
    if check_ssh:
        console.print(f"ssh port 22 on {ip}: "
                      f"{'reachable' if tcp_reachable(ip) else 'not reachable from here'}")


# ------------------------------------------------------------------- overlay

@overlay_app.command("info")
def overlay_info(board: str = typer.Option("pynq-z2"),
                 json_out: bool = typer.Option(False, "--json", help="print JSON")):
    """The overlay's IPs, addresses and VLNVs, and its resource estimate vs the budget."""
    from ..hw.resources import estimate, format_estimate
    from ..overlay_shape import overlay_shape
    from .remote import default_overlay
    shape = overlay_shape(board)
    est = estimate(shape)
    if json_out:
        print(json.dumps({"name": shape.name, "board": board, "fclk0_mhz": shape.fclk0_mhz,
                          "slots": [{"ip": s.ip_name, "kernel": s.kernel.name,
                                     "vlnv": s.kernel.vlnv, "base": hex(s.base),
                                     "dma": s.dma.name, "dma_base": hex(s.dma.base),
                                     "registers": len(s.kernel.registers)}
                                    for s in shape.slots],
                          "estimate": est.to_dict()}, indent=2, default=str))
        return
    b = shape.board
    console.print(f"[bold]{shape.name}[/] overlay for {b.name} ({b.part}, board part "
                  f"{b.board_part}); FCLK0 {shape.fclk0_mhz:g} MHz, DMAs to {b.memory.hp_port} "
                  f"({b.memory.hp_width_bits} bit)")
    print(f"{'IP':<12}{'VLNV':<34}{'base':<12}details")
    for s in shape.slots:
        print(f"{s.ip_name:<12}{s.kernel.vlnv:<34}0x{s.base:08X}  "
              f"{len(s.kernel.registers)} AXI-Lite args, ap_ctrl_hs")
        print(f"{s.dma.name:<12}{s.dma.vlnv:<34}0x{s.dma.base:08X}  simple mode, "
              f"{s.dma.data_width}-bit streams, {s.dma.length_width}-bit length")
    console.print("resource estimate (rule: cimstack.hw.resources):")
    print(format_estimate(est))
    built = default_overlay(board)
    console.print(f"built overlay: {built if built else 'none (make -C overlay BOARD=' + board + ')'}")


@overlay_app.command("tcl")
def overlay_tcl(board: str = typer.Option("pynq-z2"),
                out: Optional[Path] = typer.Option(None, help="file to write (default stdout)")):
    """Write the Vivado block-design Tcl generated from the overlay declaration."""
    from ..hw.blockdesign import block_design_tcl, write_tcl
    from ..overlay_shape import overlay_shape
    if out is None:
        sys.stdout.write(block_design_tcl(overlay_shape(board)))
    else:
        write_tcl(board, out)
        console.print(f"block design: {out}")


@overlay_app.command("build")
def overlay_build(board: str = typer.Option("pynq-z2")):
    """Run `make -C overlay BOARD=...` (Vitis HLS export + Vivado; needs both tools)."""
    from ..paths import project_root
    rc = subprocess.call(["make", "-C", str(project_root() / "overlay"), f"BOARD={board}"])
    raise typer.Exit(rc)


# -------------------------------------------------------------- deploy / run

# One set of board options for every board command (deploy, run --board, verify
# --board): defaults
# from the board's board.toml ([remote], [serial] user), see cimstack.deploy.options.
BOARD_TARGET_HELP = ("serial port (/dev/ttyUSB1) or network address of the board: host, "
                     "user@host, user@host:port or a Host alias from ~/.ssh/config")
BOARD_TYPE = typer.Option("pynq-z2", "--board-type",
                          help="board folder under boards/ or a board.toml path")
VIA = typer.Option(None, "--via", help="auto (default), serial or ssh")
USER = typer.Option(None, "--user", help="ssh login user (default: the address's user@, "
                    "else ~/.ssh/config's, else the board's login user)")
SSH_OPTION = typer.Option(None, "--ssh-option", metavar="KEY=VALUE",
                          help="passed to ssh and scp as -o KEY=VALUE (repeatable), e.g. "
                          "IdentityFile=~/.ssh/pynq")
SSH_CONFIG = typer.Option(None, "--ssh-config", help="ssh configuration file (ssh -F); "
                          "default ssh's own")
ROOT = typer.Option(None, "--root", help="cimstack's folder on the board, relative to the "
                    "login's home or absolute (default from board.toml: cimstack)")
PYTHON = typer.Option(None, "--python", help="the board's Python, with numpy and pynq "
                      "(default from board.toml: the PYNQ image's venv)")
SUDO = typer.Option(None, "--sudo/--no-sudo", help="run the board's Python under sudo "
                    "(default from board.toml: yes, pynq needs root)")


def board_options(board_type: str = "pynq-z2", via: Optional[str] = None,
                  user: Optional[str] = None, ssh_option: Optional[list[str]] = None,
                  ssh_config: Optional[str] = None, root: Optional[str] = None,
                  python: Optional[str] = None, sudo: Optional[bool] = None):
    """The :class:`~cimstack.deploy.options.BoardOptions` of the flags above."""
    from .options import BoardOptions
    return BoardOptions.for_board(board_type, via=via, user=user, ssh_options=ssh_option,
                                  ssh_config=ssh_config, root=root, python=python, sudo=sudo)


def deploy_command(
        board_target: str = typer.Option(..., "--board", help=BOARD_TARGET_HELP),
        bundle: Optional[Path] = typer.Option(None, help="bundle folder to copy as well"),
        overlay: Optional[Path] = typer.Option(None, help="<name>.bit with its .hwh beside it "
                                               "(default overlay/build/<board>/)"),
        board_type: str = BOARD_TYPE, via: Optional[str] = VIA, user: Optional[str] = USER,
        ssh_option: Optional[list[str]] = SSH_OPTION, ssh_config: Optional[str] = SSH_CONFIG,
        root: Optional[str] = ROOT, python: Optional[str] = PYTHON,
        sudo: Optional[bool] = SUDO):
    """Copy the overlay, a bundle and the cimstack runtime to the board."""
    from .remote import connect, deploy
    options = board_options(board_type, via, user, ssh_option, ssh_config, root, python, sudo)
    if overlay is not None:           # the user's overlay is checked before connecting
        from ..overlay_shape import check_handoff
        check_handoff(overlay, options.board)
    remote = connect(board_target, options, log=console.print)
    try:
        res = deploy(remote, bundle, overlay, options, progress=_progress())
    finally:
        remote.close()
    console.print(res.summary())


def _progress():
    last = {}

    def cb(name, done, total):
        pct = int(100 * done / total) if total else 100
        if last.get(name) != pct // 10:
            last[name] = pct // 10
            console.print(f"  {name}: {done}/{total} B ({pct}%)")
    return cb


def run_board_command(bundle: Path, target: str, x_int, labels=None, backend: str = "board",
                      options=None, overlay: Optional[Path] = None,
                      report: Path = Path("cimstack-out/verify-board"),
                      force: bool = False) -> int:
    """What `cimstack run BUNDLE --board TARGET` and `cimstack verify BUNDLE --board
    TARGET` do: deploy, run ``backend`` there (board: the bitstream through pynq; emu:
    the emulated overlay, for a host without an FPGA), verify every layer against the
    reference here; prints the report, writes it into ``report`` (checked before the
    run) and returns 0 when bit-exact, 1 otherwise."""
    from ..verify.compare import check_report_folder
    from .remote import run_on_board
    check_report_folder(report, force)
    res = run_on_board(bundle, target, x_int, labels=labels, backend=backend,
                       options=options or board_options(), overlay=overlay,
                       progress=_progress(), log=console.print)
    res.report.write(report, force)
    if res.deploy:
        console.print(res.deploy.summary())
    info = res.info
    console.print(f"board run: {info.get('images')} images in {info.get('seconds', 0):.2f} s "
                  f"on {info.get('backend')} ({info.get('host')}, pynq {info.get('pynq')})")
    console.print(res.report.summary())
    console.print(f"report: {report}/verify.json")
    return 0 if res.report.ok else 1
