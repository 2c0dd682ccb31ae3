"""Cost models of the three macro families and of the FPGA overlay, calibrated to the
papers: energy, latency and area from the functional schedule (docs/cost.md)."""

from .acim import acim_macro_curve
from .constants import (PAPER_POINTS, AcimConstants, DcimConstants, FpgaTiming,
                        SnnConstants)
from .fpga import fpga_cost, snn_fpga_cost
from .network import NetworkCost, network_cost
from .snn import snn_cost

__all__ = ["PAPER_POINTS", "AcimConstants", "DcimConstants", "FpgaTiming", "NetworkCost",
           "SnnConstants", "acim_macro_curve", "fpga_cost", "network_cost", "snn_cost",
           "snn_fpga_cost"]
