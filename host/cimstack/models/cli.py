"""``cimstack models list`` and ``cimstack models export NAME --out MODEL.onnx`` (mounted
by the main CLI). torch and Brevitas are imported only when a command runs."""

from __future__ import annotations

from pathlib import Path

import typer

from ..flags import SEED_MAX
from ..report.console import console, long_step, rich_table

models_app = typer.Typer(no_args_is_help=True, add_completion=False)


@models_app.command("list")
def list_command():
    """The zoo's networks: input, macro layers, MACs and weights per image, paper."""
    from .zoo import MODELS, summarize
    rows = []
    with long_step("building the zoo's networks"):
        for entry in MODELS.values():
            stats = summarize(entry.network(4, 1.0).eval(), entry.input_shape)
            rows.append((entry.name, "x".join(map(str, entry.input_shape[1:])),
                         str(stats.layers), f"{stats.macs / 1e6:.1f} M",
                         f"{stats.weights / 1e6:.2f} M", entry.paper,
                         "yes" if entry.digits_width else "", entry.description))
    console.print(rich_table("cimstack model zoo (W4A4, random weights)",
                             ["name", "input", "layers", "MACs", "weights", "paper",
                              "digits", "network"],
                             rows, right=[False, False, True, True, True, False, False,
                                          False]))


@models_app.command("export")
def export_command(
        name: str = typer.Argument(..., help="a zoo network (`cimstack models list`)"),
        out: Path = typer.Option(..., help="QONNX file to write (MODEL.onnx)"),
        seed: int = typer.Option(0, min=0, max=SEED_MAX, help="seed of the random weights"),
        bits: int = typer.Option(4, min=1, max=8, help="weight and activation bits"),
        trained_digits: bool = typer.Option(False, "--trained-digits", help="a small-width "
                                            "build trained on the sklearn digits "
                                            "upsampled to 3x32x32 (under ~30 s)")):
    """Write a zoo network as a QONNX file (random weights, or --trained-digits)."""
    from ..fileio import atomic_file, check_output_file
    from .zoo import build, build_digits, export, zoo_model
    entry = zoo_model(name)
    check_output_file(out)
    if trained_digits:
        with long_step(f"training {name} on the digits"):
            module, accuracy = build_digits(name, seed, bits)
        console.print(f"{name} (digits build): test accuracy {accuracy:.1%}")
    else:
        module = build(name, seed, bits)
    import torch
    with atomic_file(out) as tmp:
        export(module, torch.zeros(entry.input_shape), tmp)
    console.print(f"QONNX model: {out}")
