"""cimstack: FPGA co-simulation and deployment stack for compute-in-memory accelerators.

The package is split by role: ``quant`` (Brevitas training and export), ``bundle``
(the torch-free integer model format), ``mapping`` (tiling onto macros and cycle
counts), ``ref`` (bit-accurate NumPy golden models), ``emu`` (software Zynq device and
C simulation), ``hw`` (pynq drivers shared by board and emulation), ``verify`` and
``report``.
"""

__version__ = "0.1.0"

from . import builtin_families  # noqa: E402,F401  registers the dcim and acim macro families


def compile(module, example_input, macro: str = "dcim", out=None, **options):
    """A Brevitas module as a bundle: exported to QONNX and imported (written to ``out``
    when given); see :func:`cimstack.importer.brevitas_export.compile` and
    docs/models.md. Needs torch and Brevitas (the QONNX import itself does not)."""
    from .importer.brevitas_export import compile as compile_module
    return compile_module(module, example_input, macro=macro, out=out, **options)
