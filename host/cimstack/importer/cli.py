"""``cimstack import MODEL.onnx --out BUNDLE``: a QONNX model as a bundle (mounted by
the main CLI). The model is read only after the flags and the output folder passed
their checks; qonnx is imported only when the command runs."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from ..config import AcimSpec, DcimSpec
from ..errors import ConfigError
from ..flags import FORCE_HELP
from ..report.console import console, rich_table


def macro_spec(sets: list[str], macro: str = "dcim") -> DcimSpec | AcimSpec:
    """The ``macro``'s configuration with the ``--set KNOB=VALUE`` knobs (one value
    each)."""
    from ..sweep.grid import parse_sets
    knobs = {}
    for key, values in parse_sets(sets).items():
        if len(values) != 1:
            raise ConfigError(f"--set {key}: give one value (KNOB=VALUE); lists are for "
                              "`cimstack sweep`")
        knobs[key] = values[0]
    return (AcimSpec if macro == "acim" else DcimSpec).from_dict(knobs, where="--set")


def import_command(
        model: Path = typer.Argument(..., help="QONNX model (.onnx), e.g. from "
                                     "brevitas.export.export_qonnx or qonnx/FINN tools"),
        out: Path = typer.Option(..., help="bundle folder to write"),
        macro: str = typer.Option("dcim", help="macro family of the layers: dcim (digital, "
                                  "bit-exact with the model) or acim (analog: ADC, ABN, "
                                  "noise)"),
        sets: List[str] = typer.Option([], "--set", help="KNOB=VALUE of the macro, e.g. "
                                       "rows_on=8 or psum_bits=4 (dcim), adc_bits=6 or "
                                       "sigma=0.5 (acim) (docs/macros.md)"),
        force: bool = typer.Option(False, "--force", help=FORCE_HELP)):
    """Import a QONNX model as a bundle (supported graphs: docs/models.md)."""
    from ..bundle import MacroLayer, save_bundle
    from ..fileio import check_output_folder
    from .qonnx_import import check_macro, import_qonnx
    check_macro(macro)
    spec = macro_spec(sets, macro)
    check_output_folder(out, force)
    bundle = import_qonnx(model, macro=macro, **{macro: spec})
    path = save_bundle(bundle, out, force)
    rows = [(layer.name, layer.op, " x ".join(map(str, layer.out_shape)),
             f"{layer.macro} w{layer.w_bits} x{layer.x_bits}" if isinstance(layer, MacroLayer)
             else "")
            for layer in bundle.layers]
    console.print(rich_table(f"cimstack import {model.name}", ["layer", "op", "output",
                                                                "bits"], rows))
    console.print(f"bundle: {path}")
