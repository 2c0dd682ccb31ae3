"""The ``cimstack`` command line.

    cimstack demo                      train, export, run and verify the digits model
    cimstack train --out BUNDLE        quantization-aware training + export
    cimstack export CHECKPOINT --out BUNDLE
    cimstack run BUNDLE --backend reference|emu|board|auto
    cimstack verify BUNDLE --backend emu
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from .errors import CimstackError
from .report.console import console, rich_table

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="FPGA co-simulation and deployment for compute-in-memory macros.")

BACKEND_HELP = "reference (NumPy), emu (emulated overlay), board (PYNQ-Z2), auto"
BITFILE_HELP = "overlay bitstream for --backend board (cimstack.bit with its .hwh beside it)"


def _backend_name(name: str) -> str:
    """Typer callback: reject an unknown backend before any work starts."""
    from .backends import BACKENDS
    if name not in BACKENDS:
        raise typer.BadParameter(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    return name


def _train(w_bits: str, a_bits: str, sparsity: float, rows_on: int, epochs: Optional[int],
           seed: int):
    from .quant.train import train_digits
    return train_digits(w_bits=_bits(w_bits), a_bits=_bits(a_bits), block_sparsity=sparsity,
                        rows_on=rows_on, epochs=epochs, seed=seed, progress=True)


def _bits(text: str):
    """'8' -> 8; '8,4,4' -> [8, 4, 4]."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a bit width or a comma-separated list") from None
    return values[0] if len(values) == 1 else values


def _dcim_spec(rows_on: int, psum_bits: Optional[int]):
    from .config import DcimSpec
    return DcimSpec(rows_on=rows_on, psum_bits=psum_bits)


def _load_data(data: Optional[Path]):
    """Test images and labels: the digits test split, or an .npz with x (and y)."""
    if data is None:
        from .quant.data import load_digits_split
        split = load_digits_split()
        return split.x_test, split.y_test
    try:
        with np.load(data, allow_pickle=False) as f:
            x = f["x"]
            y = f["y"] if "y" in f else None
    except (OSError, ValueError, KeyError) as exc:
        raise CimstackError(f"cannot read {data}: {exc}; expected an .npz with arrays "
                            "'x' (float images) and optionally 'y' (labels)") from None
    return x, y


def _stage_rows(stages: dict) -> list[tuple[str, str]]:
    """Per-stage times of an overlay run (pack, DMA in, compute, DMA out, unpack)."""
    if not stages:
        return []
    total = stages["total_s"] or 1.0
    return [(f"  {name}", f"{1e3 * sec:.2f} ms ({100 * sec / total:.0f}%)")
            for name, sec in stages["seconds"].items()]


@app.command()
def train(out: Path = typer.Option(Path("cimstack-out/bundle"), help="bundle folder to write"),
          macro: str = typer.Option("dcim", help="dcim (digital, MARS) or acim (analog, IMAGINE)"),
          w_bits: str = typer.Option("8", help="weight bits, one value or per layer (8,4,4)"),
          a_bits: str = typer.Option("8", help="dcim: activation bits, one or per hidden layer"),
          sparsity: float = typer.Option(0.0, help="dcim: target block sparsity in [0, 1)"),
          rows_on: int = typer.Option(16, help="dcim: word lines per cycle = pruning block rows"),
          psum_bits: Optional[int] = typer.Option(None, help="dcim: column ADC bits (exact)"),
          adc_bits: int = typer.Option(6, help="acim: ADC resolution 1..8"),
          swing: str = typer.Option("adaptive", help="acim: adaptive or fixed swing"),
          sigma: float = typer.Option(0.0, help="acim: ADC noise (LSB) stored in the bundle"),
          train_sigma: float = typer.Option(0.0, help="acim: noise injected while training"),
          epochs: Optional[int] = typer.Option(None, help="training epochs"),
          seed: int = typer.Option(0),
          checkpoint: Optional[Path] = typer.Option(None, help="dcim: also save a checkpoint")):
    """Quantization-aware training of the digits CNN for a macro, exported to a bundle."""
    from .bundle import save_bundle
    if macro == "acim":
        from .config import AcimSpec
        from .quant.analog import train_analog_digits
        spec = AcimSpec(adc_bits=adc_bits, swing=swing, sigma=sigma, seed=seed)
        with console.status("training the analog digits model (ADC in the loop)"):
            res = train_analog_digits(spec, train_sigma, w_bits=int(w_bits), seed=seed,
                                      **({"epochs": epochs} if epochs else {}))
        path = save_bundle(res.export(), out)
        console.print(f"torch accuracy (ADC in the loop, no noise) {res.torch_acc:.4f}")
    elif macro == "dcim":
        result = _train(w_bits, a_bits, sparsity, rows_on, epochs, seed)
        path = result.save(out, dcim=_dcim_spec(rows_on, psum_bits))
        if checkpoint:
            from .quant.checkpoint import save_checkpoint
            save_checkpoint(result, checkpoint)
            console.print(f"checkpoint: {checkpoint}")
        console.print(f"float acc {result.float_acc:.4f}, Brevitas acc {result.quant_acc:.4f}, "
                      f"block sparsity {result.block_sparsity:.3f}")
    else:
        raise typer.BadParameter(f"unknown macro {macro!r}: choose dcim or acim")
    console.print(f"bundle: {path}")


@app.command()
def export(checkpoint: Path = typer.Argument(..., help="checkpoint written by `train`"),
           out: Path = typer.Option(Path("cimstack-out/bundle")),
           psum_bits: Optional[int] = typer.Option(None, help="column ADC bits (default exact)")):
    """Export a training checkpoint to a bundle."""
    from .bundle import save_bundle
    from .quant.checkpoint import load_checkpoint
    ck = load_checkpoint(checkpoint)
    path = save_bundle(ck.export(dcim=_dcim_spec(ck.rows_on, psum_bits)), out)
    console.print(f"bundle: {path}")


@app.command()
def run(bundle: Path = typer.Argument(..., help="bundle folder"),
        backend: str = typer.Option("reference", help=BACKEND_HELP,
                                     callback=_backend_name),
        data: Optional[Path] = typer.Option(None, help=".npz with x (and y); default digits test"),
        bitfile: Optional[Path] = typer.Option(None, help=BITFILE_HELP),
        board: Optional[str] = typer.Option(
            None, help="serial port or host of a PYNQ-Z2: deploy there, run on the board, "
                       "bring the outputs back and verify them against the reference here"),
        json_out: Optional[Path] = typer.Option(None, "--json", help="write figures as JSON")):
    """Run a bundle on a backend and report accuracy, cycles and stage times."""
    from .backends import open_backend
    from .bundle import load_bundle
    from .ref.network import quantize_input, run_network
    from .report.io import write_json_atomic

    b = load_bundle(bundle)
    x, y = _load_data(data)
    if board is not None:
        from .deploy.cli import run_board_command
        raise typer.Exit(run_board_command(bundle, board, quantize_input(b, x), labels=y))
    engine = open_backend(backend, bitfile=bitfile, console=console)
    t0 = time.perf_counter()
    res = run_network(b, quantize_input(b, x), engine=engine.engine)
    dt = time.perf_counter() - t0
    figs = {"bundle": str(bundle), "backend": engine.name, "images": len(x),
            "seconds": dt, "images_per_s": len(x) / dt,
            "cycles_per_image": res.cycles_per_image,
            "layers": [s.to_dict() for s in res.stats], "stages": engine.stage_times()}
    if y is not None:
        figs["accuracy"] = float((res.predictions == y).mean())
    rows = [("backend", engine.name), ("images", str(len(x))),
            ("images/s", f"{figs['images_per_s']:.0f}"),
            ("cycles/image", str(res.cycles_per_image))]
    if "accuracy" in figs:
        rows.insert(1, ("accuracy", f"{figs['accuracy']:.4f}"))
    rows += _stage_rows(figs["stages"])
    console.print(rich_table(f"cimstack run {b.name}", ["figure", "value"], rows))
    if json_out:
        write_json_atomic(json_out, figs)


@app.command("verify")
def verify_cmd(bundle: Path = typer.Argument(..., help="bundle folder"),
               backend: str = typer.Option("emu", help=BACKEND_HELP,
                                             callback=_backend_name),
               data: Optional[Path] = typer.Option(None, help=".npz with x (and y)"),
               limit: Optional[int] = typer.Option(None, help="only the first N images"),
               bitfile: Optional[Path] = typer.Option(None, help=BITFILE_HELP),
               report: Path = typer.Option(Path("cimstack-out/verify"),
                                           help="folder for verify.json and verify.txt")):
    """Run a bundle on a backend and on the reference; compare every layer bit for bit."""
    from .backends import open_backend
    from .bundle import load_bundle
    from .ref.network import quantize_input
    from .snn_bundle import is_snn_bundle
    from .verify.compare import verify

    if is_snn_bundle(bundle):
        from .snn_cli import verify_cmd as snn_verify
        return snn_verify(bundle=bundle, backend=backend, samples=limit or 8, data=data)
    b = load_bundle(bundle)
    x, y = _load_data(data)
    if limit is not None:
        x, y = x[:limit], (y[:limit] if y is not None else None)
    engine = open_backend(backend, bitfile=bitfile, console=console)
    rep = verify(b, quantize_input(b, x), engine.engine, engine.name, labels=y,
                 stages=engine.stage_times)
    rep.write(report)
    console.print(rep.summary())
    console.print(f"report: {report}/verify.json")
    if not rep.ok:
        raise typer.Exit(1)


@app.command()
def demo(out: Path = typer.Option(Path("cimstack-out"), help="folder for bundle and reports"),
         w_bits: str = typer.Option("8"), a_bits: str = typer.Option("8"),
         sparsity: float = typer.Option(0.5, help="target block sparsity"),
         rows_on: int = typer.Option(16), epochs: Optional[int] = typer.Option(None),
         seed: int = typer.Option(0),
         backend: str = typer.Option("emu", help="backend verified against the reference: "
                                     + BACKEND_HELP),
         snn: bool = typer.Option(False, "--snn", help="the spiking demo instead: event "
                                  "digits on the FlexSpIM-style core (same as `cimstack snn demo`)"),
         studies: bool = typer.Option(True, help="after the dcim run: cost model, quick "
                                      "analog study, small sweep and the HTML report"),
         json_out: Optional[Path] = typer.Option(None, "--json", help="write figures as JSON")):
    """Train the digits CNN, run it on the reference and the emulated overlay, verify;
    then the cost model, a quick analog study, a small sweep and the report."""
    if snn:
        from .snn_cli import demo as snn_demo
        return snn_demo(out=out, steps=16, epochs=epochs or 6, w_bits=8, v_bits=16,
                        backend=backend, verify_samples=8, bundle=None, data=None, seed=seed)
    from .backends import open_backend
    from .ref.network import quantize_input, run_network
    from .report.io import write_json_atomic
    from .verify.compare import verify

    t_start = time.perf_counter()
    console.print("[bold]cimstack demo[/]: digits CNN on the dcim macro (no board needed)")
    result = _train(w_bits, a_bits, sparsity, rows_on, epochs, seed)
    bundle_dir = result.save(out / "bundle", dcim=_dcim_spec(rows_on, None))
    from .bundle import load_bundle
    bundle = load_bundle(bundle_dir)
    x, y = result.data.x_test, result.data.y_test
    x_int = quantize_input(bundle, x)
    t0 = time.perf_counter()
    ref = run_network(bundle, x_int, keep_activations=True)
    ref_s = time.perf_counter() - t0
    pred = ref.predictions
    hw = open_backend(backend, console=console)
    t0 = time.perf_counter()
    rep = verify(bundle, x_int, hw.engine, hw.name, labels=y, stages=hw.stage_times,
                 reference=ref)
    hw_s = time.perf_counter() - t0
    rep.write(out / "verify")
    dense = sum(s.dense_cycles for s in ref.stats)
    figs = {
        "images": int(len(x)),
        "accuracy_float": float(result.float_acc),
        "accuracy_brevitas": float(result.quant_acc),
        "accuracy_reference": float((pred == y).mean()),
        "agreement_brevitas_reference": float((pred == result.quant_pred).mean()),
        "cycles_per_image": int(ref.cycles_per_image),
        "dense_cycles_per_image": int(dense),
        "skipped_cycles_per_image": int(dense - ref.cycles_per_image),
        "block_sparsity": float(result.block_sparsity),
        "reference_images_per_s": float(len(x) / ref_s),
        "backend": hw.name,
        "accuracy_backend": rep.accuracy_backend,
        "backend_bit_exact": rep.ok,
        "backend_images_per_s": float(len(x) / hw_s),
        "backend_stages": rep.stages,
        "layers": [s.to_dict() for s in ref.stats],
        "bundle": str(bundle_dir),
    }
    figs["wall_seconds"] = time.perf_counter() - t_start
    console.print(rich_table("digits on dcim: float vs Brevitas vs integer reference",
                              ["figure", "value"], [
        ("test images", str(figs["images"])),
        ("accuracy float", f"{figs['accuracy_float']:.4f}"),
        ("accuracy Brevitas", f"{figs['accuracy_brevitas']:.4f}"),
        ("accuracy integer reference", f"{figs['accuracy_reference']:.4f}"),
        ("prediction agreement Brevitas/reference", f"{figs['agreement_brevitas_reference']:.4f}"),
        ("cycles per image", f"{figs['cycles_per_image']:,}"),
        ("skipped cycles per image", f"{figs['skipped_cycles_per_image']:,} of {dense:,}"),
        ("block sparsity", f"{figs['block_sparsity']:.3f}"),
        ("reference throughput", f"{figs['reference_images_per_s']:.0f} images/s"),
        (f"accuracy {hw.name} overlay", f"{rep.accuracy_backend:.4f}"),
        (f"{hw.name} vs reference, every layer", "bit-exact" if rep.ok else "MISMATCH"),
        (f"{hw.name} throughput", f"{figs['backend_images_per_s']:.0f} images/s"),
        ("wall time", f"{figs['wall_seconds']:.1f} s"),
    ]))
    json_path = json_out or out / "demo.json"
    write_json_atomic(json_path, figs)
    console.print(f"figures: {json_path}   bundle: {bundle_dir}   verify: {out / 'verify'}")
    if studies:
        from .demo import run_study_stages
        figs["studies"] = run_study_stages(bundle, len(x), out, seed)
        figs["wall_seconds"] = time.perf_counter() - t_start
        write_json_atomic(json_path, figs)
        console.print(f"wall time with the studies: {figs['wall_seconds']:.1f} s")
    if not rep.ok:
        console.print(rep.summary())
        raise typer.Exit(1)


def _mount_subcommands() -> None:
    """Board, overlay and deploy commands (serial console, ssh, Vivado build); studies."""
    from .cost.cli import cost_command
    from .deploy.cli import board_app, deploy_command, overlay_app
    from .report.cli import report_command
    from .snn_cli import snn_app
    from .study import study_app
    from .sweep.cli import sweep_command
    app.add_typer(board_app, name="board", help="find, log into and query a PYNQ-Z2 over its "
                  "serial console")
    app.add_typer(overlay_app, name="overlay", help="overlay resources and Vivado build")
    app.command("deploy")(deploy_command)
    app.add_typer(study_app, name="study", help="parameter sweeps with CSV tables and plots")
    app.add_typer(snn_app, name="snn", help="the spiking event core: train, demo, verify, "
                  "membrane-width sweep")
    app.command("sweep")(sweep_command)
    app.command("report")(report_command)
    app.command("cost")(cost_command)


_mount_subcommands()


def main() -> None:
    """Entry point: run the app, turning cimstack and usage errors into one clear line."""
    try:
        code = app(standalone_mode=False)
    except CimstackError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise SystemExit(2)
    except Exception as exc:
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):     # click usage errors
            exc.show()
            raise SystemExit(exc.exit_code)
        if type(exc).__name__ == "Abort":                           # Ctrl-C at a prompt
            raise SystemExit(130)
        raise
    if isinstance(code, int) and code:
        raise SystemExit(code)
