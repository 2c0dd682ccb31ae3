"""``cimstack snn import GRAPH.nir --out BUNDLE``: a NIR graph as an SNN bundle (mounted
by :mod:`cimstack.snn_cli`). The graph is read only after the flags and the output
folder passed their checks; ``nir`` is imported only when the command runs."""

from __future__ import annotations

from pathlib import Path

import typer

from ..flags import FORCE_HELP
from ..report.console import console, rich_table

BITS = {"min": 2, "max": 16}


def _choice(allowed: tuple):
    def check(value: str) -> str:
        if value not in allowed:
            raise typer.BadParameter(f"{value!r}: use one of {', '.join(allowed)}")
        return value
    return check


def snn_import_command(
        graph: Path = typer.Argument(..., help="NIR graph (.nir), e.g. nir.write of "
                                     "snntorch.export_to_nir or norse.to_nir"),
        out: Path = typer.Option(..., help="SNN bundle folder to write"),
        w_bits: int = typer.Option(8, help="weight width; the scale goes into the threshold",
                                   **BITS),
        v_bits: int = typer.Option(16, help="membrane width", **BITS),
        dt: float = typer.Option(1e-4, help="Euler step of the LIF nodes in seconds: the "
                                 "exporter's (snnTorch 1e-4, Norse 1e-3); beta = 1 - dt/tau",
                                 min=1e-12),
        fire: str = typer.Option("gt", help="gt: spike at v > threshold (NIR, snnTorch, "
                                 "Norse); ge: at v >= threshold", callback=_choice(("gt", "ge"))),
        reset: str = typer.Option("zero", help="zero: v = 0 after a spike (NIR's v_reset); "
                                  "subtract: v -= threshold (snnTorch's training default, "
                                  "not recorded in NIR)", callback=_choice(("zero", "subtract"))),
        approx_leak: bool = typer.Option(False, "--approx-leak", help="a LIF decay that is "
                                         "not 1 - 2^-k: use the nearest k (the error is "
                                         "printed); refused otherwise"),
        or_pool: bool = typer.Option(False, "--or-pool", help="a pool in front of a Conv2d "
                                     "as the core's OR pooling (not a sum: exact only while "
                                     "no window holds two spikes per timestep)"),
        steps: int = typer.Option(16, help="timesteps per sample when the bundle runs",
                                  min=1, max=4096),
        force: bool = typer.Option(False, "--force", help=FORCE_HELP)):
    """Import a NIR graph (snnTorch, Norse, Sinabs, ...) as an SNN bundle (docs/nir.md)."""
    from ..fileio import check_output_folder
    from ..snn_bundle import save_snn_bundle
    from .nir_import import NirOptions, import_nir
    check_output_folder(out, force)
    opts = NirOptions(w_bits=w_bits, v_bits=v_bits, dt=dt, fire=fire, reset=reset,
                      approx_leak=approx_leak, or_pool=or_pool, n_steps=steps)
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in graph.stem)[:64] or "nir"
    result = import_nir(graph, opts, name=name if name[0].isalnum() else "nir")
    path = save_snn_bundle(result.net, out, force)
    q = result.net.meta["quantization"]
    rows = [(l.name, l.op, " x ".join(map(str, l.out_shape)),
             "" if l.op == "pool" else f"w{l.w_bits} v{l.v_bits}",
             "" if l.op == "pool" else str(l.theta),
             "" if l.op == "pool" else str(l.leak_shift),
             f"{q[l.name]['weight_scale']:.4g}" if l.name in q else "")
            for l in result.net.layers]
    console.print(rich_table(f"cimstack snn import {graph.name}",
                             ["layer", "op", "output", "bits", "theta", "leak k", "scale"], rows))
    for note in result.notes:
        console.print(f"note: {note}")
    console.print(f"bundle: {path}")
