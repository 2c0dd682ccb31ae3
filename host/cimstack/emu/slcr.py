"""The clock registers of the Zynq-7000 System Level Control Registers (SLCR, UG585
appendix B.28) at 0xF8000000, as far as ``pynq.Clocks`` uses them.

- 0x100 ARM_PLL_CTRL, 0x104 DDR_PLL_CTRL, 0x108 IO_PLL_CTRL: PLL_FDIV in bits 18:12;
  PLL output = PS crystal * PLL_FDIV.
- 0x120 ARM_CLK_CTRL: SRCSEL bits 5:4, DIVISOR bits 13:8.
- 0x170 / 0x180 / 0x190 / 0x1A0 FPGA0..3_CLK_CTRL: SRCSEL bits 5:4 (0 and 1 = IO PLL),
  DIVISOR0 bits 13:8, DIVISOR1 bits 25:20; FCLKn = source / (DIVISOR0 * DIVISOR1).

Reset values are those the PS7 initialisation of the overlay's clock plan leaves.
Every other word reads back what was last written (0 initially).
"""

from __future__ import annotations

from .hwh import ClockPlan

SLCR_BASE = 0xF8000000
SLCR_SIZE = 0x1000
ARM_PLL_CTRL, DDR_PLL_CTRL, IO_PLL_CTRL, ARM_CLK_CTRL = 0x100, 0x104, 0x108, 0x120
FPGA_CLK_CTRL = (0x170, 0x180, 0x190, 0x1A0)


class SlcrModel:
    """Word-addressed SLCR clock registers with pynq's field layout."""

    def __init__(self, plan: ClockPlan):
        self.plan = plan
        self.reset()

    def reset(self) -> None:
        p = self.plan
        self.regs = {
            ARM_PLL_CTRL: p.arm_fdiv << 12,
            DDR_PLL_CTRL: p.ddr_fdiv << 12,
            IO_PLL_CTRL: p.io_fdiv << 12,
            ARM_CLK_CTRL: p.arm_div << 8,          # SRCSEL 0: ARM PLL
        }
        for off, (d0, d1) in zip(FPGA_CLK_CTRL, p.fclk_div):
            self.regs[off] = (d1 << 20) | (d0 << 8)  # SRCSEL 0: IO PLL

    def read(self, off: int) -> int:
        return self.regs.get(off, 0)

    def write(self, off: int, value: int) -> None:
        self.regs[off] = value & 0xFFFFFFFF

    def step(self) -> bool:
        return False

    # -------------------------------------------------------------- derived
    def _pll_mhz(self, off: int) -> float:
        return self.plan.crystal_mhz * ((self.regs[off] >> 12) & 0x7F)

    def fclk_mhz(self, i: int) -> float:
        """The frequency FCLK ``i`` runs at with the current register values."""
        value = self.regs[FPGA_CLK_CTRL[i]]
        src = (IO_PLL_CTRL, IO_PLL_CTRL, ARM_PLL_CTRL, DDR_PLL_CTRL)[(value >> 4) & 0x3]
        d0, d1 = (value >> 8) & 0x3F, (value >> 20) & 0x3F
        return round(self._pll_mhz(src) / (d0 * d1), 6) if d0 and d1 else 0.0

    def describe(self) -> str:
        return f"SLCR: FCLK0 {self.fclk_mhz(0)} MHz"
