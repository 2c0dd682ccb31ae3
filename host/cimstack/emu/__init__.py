"""The emulated overlay: the real pynq API over a software Zynq device.

    >>> import pynq
    >>> from cimstack import emu
    >>> bit = emu.install()                       # register the device, write .hwh/.bit
    >>> ol = pynq.Overlay(str(bit), device=emu.device())
    >>> ol.dcim_dma.sendchannel.transfer(buf)     # the unmodified pynq.lib.dma driver

Importing this package registers :class:`~cimstack.emu.device.EmuDevice` with pynq
(priority 1000, so a board's own device stays the default there). On a machine without
a board it is pynq's only device, hence ``pynq.Device.active_device``.
"""

from __future__ import annotations

from pathlib import Path

from .hwh import build_hwh, overlay_dir, write_overlay

__all__ = ["install", "device", "real_device_present", "write_overlay", "build_hwh",
           "overlay_dir", "EmuDevice"]


try:                              # defining the class registers it with pynq
    from .device import EmuDevice
except ImportError:               # pragma: no cover - pynq not installed
    EmuDevice = None


def device(board: str = "pynq-z2"):
    """The emulated device for ``board``, registered with pynq."""
    from .device import emulated_device
    dev = emulated_device(board)
    _make_listed(dev)
    return dev


def _make_listed(dev) -> None:
    """If pynq already enumerated its devices before our class existed, add ours
    to the cached list (never in front of a real device)."""
    from pynq.pl_server.device import Device
    cached = Device.__dict__.get("_devices")
    if cached is not None and dev not in cached:
        cached.append(dev)
        if "_active_device" not in Device.__dict__ and len(cached) == 1:
            Device.active_device = dev


def install(board: str = "pynq-z2", folder: str | Path | None = None) -> Path:
    """Register the emulated device (idempotent), write the overlay's ``.hwh`` and
    placeholder ``.bit`` and return the ``.bit`` path for ``pynq.Overlay``."""
    device(board)
    return write_overlay(board, folder)


def real_device_present() -> bool:
    """True if pynq sees a device that is not this emulation (a board)."""
    try:
        from pynq.pl_server.device import Device
        from .device import EmuDevice
        devices = Device.devices
    except Exception:          # pynq missing or its probing failed: no board here
        return False
    return any(not isinstance(d, EmuDevice) for d in devices)
