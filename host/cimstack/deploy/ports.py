"""Find the board's serial console among the host's serial ports.

A PYNQ-Z2 shows up as an FTDI USB bridge (VID/PIDs in ``boards/<board>/board.toml``,
``[serial]``). Its FT2232H has two interfaces: interface 0 is JTAG, interface 1 the
UART, so on Linux the console is usually the second ``ttyUSB`` of the pair (USB
location ending in ``:1.1``); candidates are listed UART interface first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..config import load_board


@dataclass
class PortInfo:
    device: str
    description: str
    vid: Optional[int]
    pid: Optional[int]
    serial_number: Optional[str]
    location: Optional[str]
    interface: Optional[int]
    probe: str = ""            # what answered: login prompt / shell / silent / error

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _interface(location: Optional[str]) -> Optional[int]:
    if location and "." in location.rsplit(":", 1)[-1]:
        try:
            return int(location.rsplit(".", 1)[-1])
        except ValueError:
            return None
    return None


def candidate_ports(board: str = "pynq-z2", ports=None) -> list[PortInfo]:
    """Serial ports whose USB VID/PID match the board's bridge, UART interface first."""
    from serial.tools import list_ports
    facts = load_board(board).serial
    found = []
    for p in (ports if ports is not None else list_ports.comports()):
        if p.vid == facts.usb_vid and p.pid in facts.usb_pids:
            found.append(PortInfo(p.device, p.description or "", p.vid, p.pid,
                                  p.serial_number, p.location, _interface(p.location)))
    found.sort(key=lambda i: (i.interface != 1, i.device))
    return found


def probe_port(device: str, board: str = "pynq-z2", timeout: float = 3.0) -> str:
    """Send a carriage return and say what answered, without logging in."""
    import time

    from .console import (LOGIN_RE, PASSWORD_RE, PROMPT_RE, ConsoleError, clean,
                          open_serial)
    try:
        ser = open_serial(device, board)
    except ConsoleError as exc:
        return f"error: {exc}"
    try:
        ser.reset_input_buffer()
        ser.write(b"\r")
        buf, end = b"", time.monotonic() + timeout
        while time.monotonic() < end:
            buf += ser.read(ser.in_waiting or 1)
            text = clean(buf)[-300:]
            if LOGIN_RE.search(text):
                return "login prompt"
            if PASSWORD_RE.search(text):
                return "password prompt"
            if PROMPT_RE.search(text):
                return "shell prompt"
        return "answered (unrecognised)" if buf else "silent"
    except Exception as exc:
        return f"error: {exc}"
    finally:
        ser.close()


def find_boards(board: str = "pynq-z2", probe: bool = True, timeout: float = 3.0,
                ports=None) -> list[PortInfo]:
    found = candidate_ports(board, ports)
    if probe:
        for info in found:
            info.probe = probe_port(info.device, board, timeout)
    return found
