"""cimstack: FPGA co-simulation and deployment stack for compute-in-memory accelerators.

The package is split by role: ``quant`` (Brevitas training and export), ``bundle``
(the torch-free integer model format), ``mapping`` (tiling onto macros and cycle
counts), ``ref`` (bit-accurate NumPy golden models), ``emu`` (software Zynq device and
C simulation), ``hw`` (pynq drivers shared by board and emulation), ``verify`` and
``report``.
"""

__version__ = "0.1.0"
