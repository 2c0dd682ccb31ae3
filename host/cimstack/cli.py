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

import typer
from rich.markup import escape

from .config import AcimSpec, DcimSpec
from .errors import CimstackError, ConfigError
from .flags import (EPOCHS_MAX, FORCE_HELP, FORCE_WRITE_HELP, SEED_MAX, finite, knob_limits,
                    knob_range, overlay_file, SNN_FIT)
from .deploy.cli import (BOARD_TYPE, PYTHON, ROOT, SSH_CONFIG, SSH_OPTION, SUDO, USER,
                         VIA)
from .report.console import console, rich_table

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="FPGA co-simulation and deployment for compute-in-memory macros.")

BACKEND_HELP = "reference (NumPy), emu (emulated overlay), board (PYNQ-Z2), auto"
RANDOM_MAX = 100_000
RANDOM_HELP = ("N seeded random images across the input quantizer's range instead of the "
               "digits (the default for a bundle whose input is not the digits' 1x8x8)")
BITFILE_HELP = "overlay bitstream for --backend board (cimstack.bit with its .hwh beside it)"
VERIFY_BACKENDS = ("emu", "board", "auto")
DATA_HELP = ("dcim/acim bundles: an .npz with x, float images (N, *input shape), e.g. "
             "(N, 1, 8, 8) or (N, 8, 8), in 0..scale*(2^bits-1) of the bundle's input "
             "quantizer (digits: pixels/16, in [0, 1]), and optional y, integer labels "
             "0..classes-1, one per image; SNN bundles: an N-MNIST or DVS Gesture folder. "
             "Default: the digits test split (event digits for SNN)")


def _verify_backend(name: Optional[str]) -> Optional[str]:
    """Typer callback: a backend that verify can compare with the reference."""
    from .backends import verify_backend
    return None if name is None else verify_backend(name, VERIFY_BACKENDS)


def _backend_name(name: Optional[str]) -> Optional[str]:
    """Typer callback: reject an unknown backend before any work starts."""
    from .backends import BACKENDS
    if name is not None and name not in BACKENDS:
        raise typer.BadParameter(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    return name


def _train(w_bits: str, a_bits: str, sparsity: float, rows_on: int, epochs: Optional[int],
           seed: int):
    """Train the digits CNN: a rich bar on a terminal, plain progress lines when piped."""
    from .quant.train import train_digits
    from .report.console import long_step
    with long_step("training", live=False) as step:
        return train_digits(w_bits=_bits(w_bits), a_bits=_bits(a_bits, "--a-bits",
                                                                       DIGITS_LAYERS - 1),
                            block_sparsity=sparsity, rows_on=rows_on, epochs=epochs, seed=seed,
                            progress=True if console.is_terminal else lambda ev: step.update(
                                f"training: {ev.stage} epoch {ev.epoch}/{ev.epochs}"))


# macro layers of the digits CNN (cimstack.quant.model.NUM_LAYERS, not imported here:
# it brings torch, and a flag must be checked in a blink)
DIGITS_LAYERS = 3


def _bits(text: str, flag: str = "--w-bits", layers: int = DIGITS_LAYERS):
    """'8' -> 8; '8,4,4' -> [8, 4, 4]: each 1..8, one value or one per layer."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{flag} {text!r} is not a bit width or a comma-separated "
                                 "list") from None
    if len(values) not in (1, layers):
        what = f"one bit width or {layers} (one per layer)" if layers > 1 else \
            "one bit width (this macro takes one for every layer)"
        raise typer.BadParameter(f"{flag} {text}: give {what}")
    for v in values:
        if not 1 <= v <= 8:
            raise typer.BadParameter(f"{flag} {text}: {flag[2:].replace('-', '_')} = {v} is "
                                     "out of range: allowed 1..8")
    return values[0] if len(values) == 1 else values


def _dcim_spec(rows_on: int, psum_bits: Optional[int]):
    return DcimSpec(rows_on=rows_on, psum_bits=psum_bits)


def _dcim_flags(w_bits: str, a_bits: str, rows_on: int, psum_bits: Optional[int]) -> DcimSpec:
    """The cross-field checks of a dcim training, before it starts: the bit widths per
    layer and the macro spec (``rows_on`` must divide the rows, ...)."""
    _bits(w_bits, "--w-bits", DIGITS_LAYERS)
    _bits(a_bits, "--a-bits", DIGITS_LAYERS - 1)
    return _dcim_spec(rows_on, psum_bits)


def _stage_rows(stages: dict) -> list[tuple[str, str]]:
    """Per-stage times of an overlay run (pack, DMA in, compute, DMA out, unpack)."""
    if not stages:
        return []
    total = stages["total_s"] or 1.0
    return [(f"  {name}", f"{1e3 * sec:.2f} ms ({100 * sec / total:.0f}%)")
            for name, sec in stages["seconds"].items()] + [
        ("  weight loads", f"{stages.get('weight_loads', 0)} "
                           f"({stages.get('weight_load_bytes', 0)} bytes)")]


@app.command()
def train(out: Path = typer.Option(Path("cimstack-out/bundle"), help="bundle folder to write"),
          macro: str = typer.Option("dcim", help="dcim (digital, MARS) or acim (analog, IMAGINE)"),
          w_bits: str = typer.Option("8", help="weight bits, one value or per layer (8,4,4)"),
          a_bits: str = typer.Option("8", help="dcim: activation bits, one or per hidden layer"),
          sparsity: float = typer.Option(0.0, help="dcim: target block sparsity in [0, 1)",
                                         callback=finite(0.0, 1.0, below_hi=True)),
          rows_on: int = typer.Option(16, help="dcim: word lines per cycle = pruning block rows",
                                      **knob_limits(DcimSpec, "rows_on")),
          psum_bits: Optional[int] = typer.Option(None, help="dcim: column ADC bits (exact)",
                                                  **knob_limits(DcimSpec, "psum_bits")),
          adc_bits: int = typer.Option(6, help="acim: ADC resolution 1..8",
                                       **knob_limits(AcimSpec, "adc_bits")),
          swing: str = typer.Option("adaptive", help="acim: adaptive or fixed swing"),
          sigma: float = typer.Option(0.0, help="acim: ADC noise (LSB) stored in the bundle",
                                      callback=finite(*knob_range(AcimSpec, "sigma"))),
          train_sigma: float = typer.Option(0.0, help="acim: noise injected while training",
                                            callback=finite(*knob_range(AcimSpec, "sigma"))),
          epochs: Optional[int] = typer.Option(None, help="training epochs",
                                               min=1, max=EPOCHS_MAX),
          seed: int = typer.Option(0, min=0, max=SEED_MAX),
          checkpoint: Optional[Path] = typer.Option(None, help="dcim: also save a checkpoint"),
          force: bool = typer.Option(False, "--force", help=FORCE_HELP)):
    """Quantization-aware training of the digits CNN for a macro, exported to a bundle."""
    from .bundle import save_bundle
    from .fileio import check_output_folder
    if macro == "acim":           # every flag is checked before the training starts
        spec = AcimSpec(adc_bits=adc_bits, swing=swing, sigma=sigma, seed=seed)
        acim_w_bits = _bits(w_bits, "--w-bits", layers=1)
        if acim_w_bits < 2:       # as the sweep's AcimPoint.w_bits: 2..8
            raise typer.BadParameter(f"--w-bits {w_bits}: the analog model trains 2..8-bit "
                                     "weights")
    elif macro == "dcim":
        dcim = _dcim_flags(w_bits, a_bits, rows_on, psum_bits)
    else:
        raise typer.BadParameter(f"unknown macro {macro!r}: choose dcim or acim")
    check_output_folder(out, force)
    if macro == "acim":
        from .quant.analog import train_analog_digits
        from .report.console import long_step
        with long_step("training the analog digits model (ADC in the loop)"):
            res = train_analog_digits(spec, train_sigma, w_bits=acim_w_bits, seed=seed,
                                      **({"epochs": epochs} if epochs else {}))
        path = save_bundle(res.export(), out, force)
        console.print(f"torch accuracy (ADC in the loop, no noise) {res.torch_acc:.4f}")
    elif macro == "dcim":
        result = _train(w_bits, a_bits, sparsity, rows_on, epochs, seed)
        path = result.save(out, dcim=dcim, force=force)
        if checkpoint:
            from .quant.checkpoint import save_checkpoint
            save_checkpoint(result, checkpoint)
            console.print(f"checkpoint: {checkpoint}")
        console.print(f"float acc {result.float_acc:.4f}, Brevitas acc {result.quant_acc:.4f}, "
                      f"block sparsity {result.block_sparsity:.3f}")
    console.print(f"bundle: {path}")


@app.command()
def export(checkpoint: Path = typer.Argument(..., help="checkpoint written by `train`"),
           out: Path = typer.Option(Path("cimstack-out/bundle")),
           psum_bits: Optional[int] = typer.Option(None, help="column ADC bits (default exact)",
                                                   **knob_limits(DcimSpec, "psum_bits")),
           force: bool = typer.Option(False, "--force", help=FORCE_HELP)):
    """Export a training checkpoint to a bundle."""
    from .bundle import save_bundle
    from .fileio import check_output_folder
    from .quant.checkpoint import load_checkpoint
    check_output_folder(out, force)
    ck = load_checkpoint(checkpoint)
    path = save_bundle(ck.export(dcim=_dcim_spec(ck.rows_on, psum_bits)), out, force)
    console.print(f"bundle: {path}")


@app.command("export-qonnx")
def export_qonnx(checkpoint: Path = typer.Argument(..., help="checkpoint written by `train`"),
                 out: Path = typer.Option(..., help="QONNX file to write (.onnx)")):
    """Export a training checkpoint's quantized model as QONNX (FINN, hls4ml, `import`)."""
    from .quant.qonnx_export import export_checkpoint_qonnx
    console.print(f"qonnx: {export_checkpoint_qonnx(checkpoint, out)}")


def _no_fit(fit: Optional[str]) -> None:
    """dcim and acim bundles take images: --fit (event data) does not apply."""
    if fit is not None:
        raise ConfigError("--fit moves event data onto an SNN bundle's input; a dcim or acim "
                          "bundle takes images of its input shape: drop --fit")


@app.command()
def run(bundle: Path = typer.Argument(..., help="bundle folder"),
        backend: Optional[str] = typer.Option(
            None, help=BACKEND_HELP + " (default reference; with --board: board, and emu runs "
            "the emulated overlay on the remote)", callback=_backend_name),
        data: Optional[Path] = typer.Option(None, help=DATA_HELP),
        fit: Optional[str] = SNN_FIT,
        bitfile: Optional[Path] = typer.Option(None, help=BITFILE_HELP, callback=overlay_file),
        board: Optional[str] = typer.Option(
            None, help="serial port or address (host, user@host:port, ssh alias) of a "
                       "PYNQ-Z2: deploy there, run on the board, bring the outputs back and "
                       "verify them against the reference here"),
        board_type: str = BOARD_TYPE, via: Optional[str] = VIA, user: Optional[str] = USER,
        ssh_option: Optional[list[str]] = SSH_OPTION, ssh_config: Optional[str] = SSH_CONFIG,
        root: Optional[str] = ROOT, python: Optional[str] = PYTHON,
        sudo: Optional[bool] = SUDO,
        json_out: Optional[Path] = typer.Option(None, "--json", help="write figures as JSON"),
        random: Optional[int] = typer.Option(None, "--random", min=1, max=RANDOM_MAX,
                                             help=RANDOM_HELP)):
    """Run a bundle (dcim, acim or SNN) on a backend; report accuracy, cycles or events,
    throughput and stage times."""
    from .backends import open_backend
    from .bundle import load_bundle
    from .data import load_images
    from .ref.network import quantize_input, run_network
    from .fileio import write_json_atomic
    from .snn_bundle import is_snn_bundle

    if is_snn_bundle(bundle):
        if random is not None:
            raise ConfigError("--random gives images to dcim and acim bundles; an SNN bundle "
                              "runs on the event digits or --data")
        if board is not None:
            raise CimstackError("--board deploys dcim and acim bundles; run an SNN bundle "
                                "with --backend emu, or board with --bitfile on the board")
        from .snn_cli import run_bundle
        return run_bundle(bundle, backend or "reference", data, bitfile, json_out, fit)
    _no_fit(fit)
    b = load_bundle(bundle)
    x, y, source = load_images(b, data, random)
    if data is None and y is None:                # random images: say so
        console.print(f"inputs: {source}")
    if board is not None:
        from .deploy.cli import board_options, run_board_command
        options = board_options(board_type, via, user, ssh_option, ssh_config, root, python, sudo)
        raise typer.Exit(run_board_command(bundle, board, quantize_input(b, x), y,
                                           backend or "board", options, bitfile))
    engine = open_backend(backend or "reference", bitfile=bitfile, console=console)
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
               backend: Optional[str] = typer.Option(
                   None, help="emu (emulated overlay; the default), board (PYNQ-Z2; the "
                   "default with --board) or auto; compared with the reference",
                   callback=_verify_backend),
               data: Optional[Path] = typer.Option(None, help=DATA_HELP),
               fit: Optional[str] = SNN_FIT,
               limit: Optional[int] = typer.Option(None, help="only the first N images",
                                                   min=1),
               bitfile: Optional[Path] = typer.Option(None, help=BITFILE_HELP,
                                                      callback=overlay_file),
               board: Optional[str] = typer.Option(
                   None, help="serial port or address (host, user@host:port, ssh alias) of a "
                   "PYNQ-Z2: deploy there, run the backend there (board, or emu on a host "
                   "without an FPGA) and compare with the reference here"),
               board_type: str = BOARD_TYPE, via: Optional[str] = VIA,
               user: Optional[str] = USER, ssh_option: Optional[list[str]] = SSH_OPTION,
               ssh_config: Optional[str] = SSH_CONFIG, root: Optional[str] = ROOT,
               python: Optional[str] = PYTHON, sudo: Optional[bool] = SUDO,
               report: Path = typer.Option(Path("cimstack-out/verify"),
                                           help="folder for verify.json and verify.txt"),
               force: bool = typer.Option(False, "--force", help=FORCE_WRITE_HELP),
               against: Optional[Path] = typer.Option(
                   None, help="the QONNX model the bundle was imported from: compare every "
                   "layer's codes with qonnx's executor too (writes against.json)"),
               min_identical: float = typer.Option(0.999, help="--against: least fraction of "
                                                   "each layer's codes matching qonnx's (up "
                                                   "to its float32 error)",
                                                   callback=finite(0.0, 1.0)),
               min_agreement: float = typer.Option(0.99, help="--against: least fraction of "
                                                   "images with qonnx's prediction",
                                                   callback=finite(0.0, 1.0)),
               random: Optional[int] = typer.Option(None, "--random", min=1, max=RANDOM_MAX,
                                                    help=RANDOM_HELP)):
    """Run a bundle on a backend and on the reference; compare every layer bit for bit
    (with --against, also the reference with the QONNX model it was imported from)."""
    from .backends import open_backend
    from .bundle import load_bundle
    from .data import load_images
    from .ref.network import quantize_input
    from .report.console import long_step
    from .snn_bundle import is_snn_bundle
    from .verify.compare import check_report_folder, verify

    check_report_folder(report, force)
    if is_snn_bundle(bundle):
        if against is not None:
            raise ConfigError(f"--against: {bundle} is an SNN bundle; --against checks "
                              "bundles written by `cimstack import MODEL.onnx`")
        if board is not None:
            raise CimstackError("--board verifies dcim and acim bundles; verify an SNN bundle "
                                "with --backend emu, or board with --bitfile on the board")
        from .snn_cli import verify_cmd as snn_verify
        return snn_verify(bundle=bundle, backend=backend or "emu", samples=limit or 8,
                          data=data, fit=fit, bitfile=bitfile, report=report, force=force)
    _no_fit(fit)
    b = load_bundle(bundle)
    x, y, source = load_images(b, data, random)
    if data is None and y is None:                # random images: say so
        console.print(f"inputs: {source}")
    if limit is not None:
        x, y = x[:limit], (y[:limit] if y is not None else None)
    if against is not None:                      # before the backend: it fails early
        from .verify.against import check_against
        with long_step(f"running {against.name} on qonnx's executor"):
            model_rep = check_against(b, against, x, min_identical, min_agreement)
    if board is not None:                        # deploy, run there, compare here
        from .deploy.cli import board_options, run_board_command
        options = board_options(board_type, via, user, ssh_option, ssh_config, root, python, sudo)
        ok = run_board_command(bundle, board, quantize_input(b, x), y, backend or "board",
                               options, bitfile, report, force) == 0
    else:
        engine = open_backend(backend or "emu", bitfile=bitfile, console=console)
        with long_step(f"verifying {len(x)} images on {engine.name}"):
            rep = verify(b, quantize_input(b, x), engine.engine, engine.name, labels=y,
                         stages=engine.stage_times)
        rep.write(report, force)
        console.print(rep.summary())
        console.print(f"report: {report}/verify.json")
        ok = rep.ok
    if against is not None:
        model_rep.write(report)
        console.print(model_rep.table())
        for line in model_rep.failures():
            console.print(f"below threshold: {escape(line)}")
        console.print(f"report: {report}/against.json")
    if not ok or (against is not None and not model_rep.ok):
        raise typer.Exit(1)


@app.command()
def demo(out: Path = typer.Option(Path("cimstack-out"), help="folder for bundle and reports"),
         w_bits: str = typer.Option("8"), a_bits: str = typer.Option("8"),
         sparsity: float = typer.Option(0.5, help="target block sparsity in [0, 1)",
                                        callback=finite(0.0, 1.0, below_hi=True)),
         rows_on: int = typer.Option(16, **knob_limits(DcimSpec, "rows_on")),
         epochs: Optional[int] = typer.Option(None, min=1, max=EPOCHS_MAX),
         seed: int = typer.Option(0, min=0, max=SEED_MAX),
         backend: str = typer.Option("emu", help="backend verified against the reference: "
                                     "emu (emulated overlay), board (PYNQ-Z2) or auto",
                                     callback=_verify_backend),
         snn: bool = typer.Option(False, "--snn", help="the spiking demo instead: event "
                                  "digits on the FlexSpIM-style core (same as `cimstack snn demo`)"),
         studies: bool = typer.Option(True, help="after the dcim run: cost model, quick "
                                      "analog study, small sweep and the HTML report"),
         json_out: Optional[Path] = typer.Option(None, "--json", help="write figures as JSON"),
         force: bool = typer.Option(False, "--force", help=FORCE_WRITE_HELP)):
    """Train the digits CNN, run it on the reference and the emulated overlay, verify;
    then the cost model, a quick analog study, a small sweep and the report."""
    if snn:
        from .snn_cli import demo as snn_demo
        return snn_demo(out=out, steps=16, epochs=epochs or 6, w_bits=8, v_bits=16,
                        backend=backend, verify_samples=8, bundle=None, data=None,
                        fit=None, seed=seed, force=force)
    from .backends import open_backend
    from .ref.network import quantize_input, run_network
    from .fileio import claim_folder, write_json_atomic
    from .report.console import long_step
    from .verify.compare import verify

    dcim = _dcim_flags(w_bits, a_bits, rows_on, None)
    claim_folder(out, force, kind="run")
    t_start = time.perf_counter()
    console.print("[bold]cimstack demo[/]: digits CNN on the dcim macro (no board needed)")
    result = _train(w_bits, a_bits, sparsity, rows_on, epochs, seed)
    bundle_dir = result.save(out / "bundle", dcim=dcim, force=force)
    from .bundle import load_bundle
    bundle = load_bundle(bundle_dir)
    x, y = result.data.x_test, result.data.y_test
    x_int = quantize_input(bundle, x)
    t0 = time.perf_counter()
    ref = run_network(bundle, x_int, keep_activations=True)
    ref_s = time.perf_counter() - t0
    pred = ref.predictions
    hw = open_backend(backend, console=console)
    with long_step(f"verifying {len(x)} images on {hw.name}"):
        rep = verify(bundle, x_int, hw.engine, hw.name, labels=y, stages=hw.stage_times,
                     reference=ref)
        t0 = time.perf_counter()              # throughput warm: a second pass, after the
        run_network(bundle, x_int, hw.engine)   # first one loaded the overlay and kernels
        hw_s = time.perf_counter() - t0
    rep.write(out / "verify", force)
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
        "backend_images_per_s_warm": float(len(x) / hw_s),
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
        ("reference throughput", f"{figs['reference_images_per_s']:,.0f} images/s"),
        (f"accuracy {hw.name} overlay", f"{rep.accuracy_backend:.4f}"),
        (f"{hw.name} vs reference, every layer", "bit-exact" if rep.ok else "MISMATCH"),
        (f"{hw.name} throughput (warm)", f"{figs['backend_images_per_s_warm']:,.0f} images/s"),
        ("wall time", f"{figs['wall_seconds']:.1f} s"),
    ]))
    json_path = json_out or out / "demo.json"
    write_json_atomic(json_path, figs)
    console.print(f"figures: {json_path}   bundle: {bundle_dir}   verify: {out / 'verify'}")
    if studies:
        from .demo import run_study_stages
        figs["studies"] = run_study_stages(bundle, len(x), out, seed, force)
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
    from .events_cli import events_app
    from .importer.cli import import_command
    from .models.cli import models_app
    from .report.cli import report_command
    from .snn_cli import snn_app
    from .study import study_app
    from .study.cli import finetune_command, search_command, sensitivity_command
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
    app.command("sensitivity")(sensitivity_command)
    app.command("search")(search_command)
    app.command("finetune")(finetune_command)
    app.command("cost")(cost_command)
    app.command("import")(import_command)
    app.add_typer(models_app, name="models", help="the model zoo: VGG16, ResNet18, an "
                  "IMAGINE CNN, FINN's CNV as QONNX files")
    app.add_typer(events_app, name="events", help="event-camera files: info, convert "
                  "(AEDAT 3.1/4, EVT 2/3, DAT, ES, N-MNIST)")


_mount_subcommands()


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: run the app, turning cimstack and usage errors into one clear line."""
    try:
        code = app(args=argv, prog_name="cimstack", standalone_mode=False)
    except CimstackError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
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
