"""Backend choice for every command that runs a model.

- ``reference``: the NumPy golden model;
- ``emu``: the emulated overlay (real pynq API over the software Zynq device, C-sim
  kernels);
- ``board``: the overlay on a PYNQ-Z2 (run on the board itself);
- ``auto``: the board when pynq finds a real device, else the emulation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .errors import ConfigError, HardwareError
from .ref.network import Engine, reference_engine

BACKENDS = ("reference", "emu", "board", "auto")


@dataclass
class Backend:
    """A named engine for the network executor, with its stage timings."""

    name: str
    engine: Engine
    stage_times: Callable[[], dict]
    overlay: object = None


def verify_backend(name: str, allowed: tuple[str, ...]) -> str:
    """``name`` when it is one of the backends ``allowed`` to be verified, else a
    ConfigError: ``verify`` compares a backend with the reference, never the reference
    with itself."""
    if name in allowed:
        return name
    what = ("the reference cannot be verified against itself" if name == "reference"
            else f"unknown backend {name!r}")
    raise ConfigError(f"--backend {name}: {what}; choose one of {', '.join(allowed)}")


def open_backend(name: str, bitfile: Optional[Path] = None, console=None,
                 timeout_s: float = 10.0) -> Backend:
    """Open backend ``name``; ``auto`` says which one it took."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    if name == "reference":
        return Backend("reference", reference_engine, dict)
    overlay, name = open_overlay(name, bitfile, console)
    engine = overlay.macro_engine(timeout_s=timeout_s)
    return Backend(name, engine, engine.stage_times, overlay)


def open_overlay(name: str, bitfile: Optional[Path] = None, console=None):
    """The overlay for ``emu``, ``board`` or ``auto`` (which says which it took):
    returns ``(CimOverlay, resolved name)``."""
    from .overlay_shape import check_handoff
    if bitfile is not None:           # the user's file is checked before pynq parses it
        check_handoff(bitfile)
    from . import emu
    from .hw.overlay import CimOverlay
    if name == "auto":
        name = "board" if emu.real_device_present() else "emu"
        if console is not None:
            console.print(f"backend auto -> [bold]{name}[/] "
                          f"({'pynq found a device' if name == 'board' else 'no board found'})")
    if name == "board":
        if not emu.real_device_present():
            raise HardwareError("backend 'board' needs a PYNQ board: pynq found no device here "
                                "(run on the board, or use --backend emu)")
        if bitfile is None:
            raise ConfigError("backend 'board' needs the overlay bitstream: pass --bitfile "
                              "cimstack.bit (built by `make -C overlay`)")
        return CimOverlay(Path(bitfile)), name
    if name != "emu":
        raise ConfigError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    return CimOverlay(emu.install(), device=emu.device()), name


def open_snn_runner(backend: str = "csim", bitfile: Optional[Path] = None,
                    timeout_s: float = 10.0, console=None):
    """``(runner, resolved name)`` of the spiking core
    (:class:`cimstack.hw.snn.SnnKernelRunner`): ``csim`` (kernel library, no pynq),
    ``emu`` (emulated overlay through pynq and the DMA driver), ``board`` (PYNQ-Z2;
    needs ``bitfile``), ``auto`` (says which it took)."""
    from .hw.snn import csim_runner, overlay_runner
    if backend == "csim":
        return csim_runner(), "csim"
    overlay, name = open_overlay(backend, bitfile, console)
    slot = overlay.shape.slot("snn")
    return overlay_runner(overlay, slot.ip_name, slot.dma.name, timeout_s), name
