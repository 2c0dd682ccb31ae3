"""Exceptions raised by cimstack. Every message names the problem and how to fix it."""


class CimstackError(Exception):
    """Base class of every error cimstack raises on purpose."""


class ConfigError(CimstackError, ValueError):
    """A configuration value is missing, unknown or out of its allowed range."""


class BundleError(CimstackError, ValueError):
    """A model bundle on disk is missing, damaged or inconsistent."""


class HardwareError(CimstackError, RuntimeError):
    """The overlay (board or emulated) did not behave as its protocol says."""


class DmaTimeout(HardwareError, TimeoutError):
    """A DMA channel or an IP did not finish within its time limit."""


class ToolMissing(CimstackError, RuntimeError):
    """An external tool (C++ compiler, Vitis HLS, Vivado) is not installed."""


class OutputError(CimstackError, ValueError):
    """An output path would delete or replace something cimstack did not write."""
