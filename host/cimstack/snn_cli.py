"""``cimstack snn ...``: the spiking event core from the command line.

    cimstack snn demo     train, export, run on the emulated overlay, verify
    cimstack snn train    train the spiking CNN and write an SNN bundle
    cimstack snn verify   a bundle on a backend (csim / emu / board) vs the reference
    cimstack snn sweep    membrane width 16..6 bits: accuracy and operand traffic
    cimstack snn import   a NIR graph (snnTorch, Norse, ...) as an SNN bundle

Data: the built-in event digits (generated once and cached), or ``--data PATH`` with
an extracted N-MNIST (or DVS Gesture) folder. Nothing is downloaded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from .flags import (EPOCHS_MAX, FORCE_HELP, FORCE_WRITE_HELP, SEED_MAX, SNN_FIT,
                    overlay_file)
from .importer.nir_cli import snn_import_command
from .overlay_shape import SNN
from .report.console import console, rich_table

snn_app = typer.Typer(add_completion=False, no_args_is_help=True,
                      help="Spiking event core (FlexSpIM family): train, run, verify, sweep.")
snn_app.command("import")(snn_import_command)      # NIR graph -> SNN bundle


VERIFY_BACKENDS = ("csim", "emu", "board", "auto")
DATA_HELP = ("extracted N-MNIST (Test/<label>/*.bin) or DVS128 Gesture (*.aedat) folder; "
             "frames must match the bundle's input, labels its classes; default: the "
             "built-in event digits")


# flag limits: train_snn and narrow_membranes take 2..16-bit weights and membranes
TRAIN_BITS = {"min": 2, "max": 16}
EPOCHS = {"min": 1, "max": EPOCHS_MAX}
SEED = {"min": 0, "max": SEED_MAX}


def _verify_backend(name: str) -> str:
    """Typer callback: a backend the spiking kernel can be verified on."""
    from .backends import verify_backend
    return verify_backend(name, VERIFY_BACKENDS)


def _layer_table(cost: dict, title: str):
    return rich_table(title, ["layer", "dataflow", "resident bits", "weight traffic",
                              "membrane traffic", "SOPs", "events in", "cycles"], [
        [r["layer"], f"{r['dataflow']} ({r['policy']})", f"{r['resident_bits']:,}",
         f"{r['weight_traffic_bits']:,}", f"{r['membrane_traffic_bits']:,}", f"{r['sops']:,}",
         f"{r['events_in']:,}", f"{r['cycles']:,}"] for r in cost["layers"]])


def evaluate(net, frames, labels, policy: Optional[str] = None) -> dict:
    """Reference accuracy, events, SOPs, wall time and the cost model of a run."""
    from .cost import snn_cost
    from .ref.snn import run_snn
    t0 = time.perf_counter()
    res = run_snn(net, frames)
    dt = time.perf_counter() - t0
    cost = snn_cost(net, res, len(frames), policy)
    acc = float((res.predictions == labels).mean()) if labels is not None else None
    return {"accuracy": acc, "input_events": res.input_events, "sops": res.sops,
            "seconds": dt, "events_per_s": res.input_events / dt if dt else 0.0,
            "cost": cost, "result": res}


def verify_snn(net, frames, backend: str = "emu", timeout_s: float = 10.0,
               bitfile: Optional[Path] = None) -> dict:
    """Run ``net`` on the kernel through ``backend`` and compare every layer's spikes
    and the last layer's membranes with the reference."""
    from .backends import open_snn_runner
    from .ref.snn import run_snn
    ref = run_snn(net, frames, keep_spikes=True)
    runner, backend = open_snn_runner(backend, bitfile, timeout_s, console)
    t0 = time.perf_counter()
    got = runner.run(net, frames)
    dt = time.perf_counter() - t0
    layers = []
    for name, s in got.spikes.items():
        bad = int((s != ref.spikes[name]).sum())
        layers.append({"layer": name, "elements": int(s.size), "mismatches": bad})
    v_bad = int((got.v_final != ref.v_final).sum())
    ok = all(l["mismatches"] == 0 for l in layers) and v_bad == 0
    return {"backend": backend, "samples": int(len(frames)), "ok": ok, "layers": layers,
            "membrane_mismatches": v_bad, "seconds": dt,
            "prediction_agreement": float((got.predictions == ref.predictions).mean()),
            "stages": runner.times.to_dict()}


def verify_summary(rep: dict) -> str:
    """The text of a :func:`verify_snn` report (printed, and verify.txt)."""
    lines = [f"verify on {rep['backend']}: {rep['samples']} samples, "
             f"{'BIT-EXACT' if rep['ok'] else 'MISMATCH'} ({rep['seconds']:.1f} s)"]
    lines += [f"  {l['layer']:<8} {l['mismatches']:>8} / {l['elements']} mismatching"
              for l in rep["layers"]]
    lines.append(f"  final membranes: {rep['membrane_mismatches']} mismatching")
    return "\n".join(lines)


def write_verify(rep: dict, bundle_name: str, folder: Path, force: bool = False) -> Path:
    """verify.json and verify.txt of a :func:`verify_snn` report into ``folder``; the
    JSON has the layout of a dcim verify.json (``images``, ``layers[].name``), so
    ``cimstack report`` reads either."""
    from .verify.compare import write_verify_files
    doc = dict(rep, bundle=bundle_name, images=rep["samples"],
               layers=[{"name": l["layer"], "elements": l["elements"],
                        "mismatches": l["mismatches"]} for l in rep["layers"]])
    return write_verify_files(folder, doc, verify_summary(rep), force)


def run_bundle(bundle: Path, backend: str, data: Optional[Path], bitfile: Optional[Path],
               json_out: Optional[Path], fit: Optional[str] = None) -> None:
    """``cimstack run`` of an SNN bundle: accuracy, events, synaptic ops and samples/s
    on ``backend`` (reference, emu, board, auto), on ``data`` (moved onto the bundle's
    input by ``fit``) or the event digits."""
    from .data import snn_inputs
    from .fileio import write_json_atomic
    from .ref.snn import run_snn
    from .snn_bundle import load_snn_bundle
    net = load_snn_bundle(bundle)
    from .backends import open_snn_runner
    runner, name = ((None, "reference") if backend == "reference"
                    else open_snn_runner(backend, bitfile, console=console))
    frames, labels, source = snn_inputs(net, data, fit=fit)
    console.print(f"inputs: {source}")
    t0 = time.perf_counter()
    res = run_snn(net, frames) if runner is None else runner.run(net, frames, keep_spikes=False)
    dt = time.perf_counter() - t0
    figs = {"bundle": str(bundle), "backend": name, "samples": int(len(frames)),
            "accuracy": None if labels is None else float((res.predictions == labels).mean()),
            "input_events": int(res.input_events), "sops": int(res.sops), "seconds": dt,
            "samples_per_s": len(frames) / max(dt, 1e-9),
            "stages": runner.times.to_dict() if runner is not None else {}}
    console.print(rich_table(f"cimstack run {net.name}", ["figure", "value"], [
        ("backend", name), ("accuracy", "n/a (random events)" if labels is None
                            else f"{figs['accuracy']:.4f}"),
        ("samples", str(figs["samples"])), ("samples/s", f"{figs['samples_per_s']:.1f}"),
        ("input events", f"{figs['input_events']:,}"),
        ("synaptic ops", f"{figs['sops']:,}")]))
    if json_out:
        write_json_atomic(json_out, figs)


@snn_app.command()
def train(out: Path = typer.Option(Path("cimstack-out/snn_bundle"), help="SNN bundle folder"),
          steps: int = typer.Option(16, help="timesteps per sample", min=1),
          epochs: int = typer.Option(6, **EPOCHS), w_bits: int = typer.Option(8, **TRAIN_BITS),
          v_bits: int = typer.Option(16, **TRAIN_BITS), seed: int = typer.Option(0, **SEED),
          data: Optional[Path] = typer.Option(None, help="N-MNIST folder; default built-in"),
          ksize: int = typer.Option(5, help="both convs' kernel size", min=1,
                                    max=SNN.capacity["MAX_KSIZE"]),
          stride: int = typer.Option(1, help="both convs' stride", min=1,
                                     max=SNN.capacity["MAX_STRIDE"]),
          padding: int = typer.Option(0, help="both convs' zero padding", min=0,
                                      max=SNN.capacity["MAX_PAD"]),
          force: bool = typer.Option(False, "--force", help=FORCE_HELP)):
    """Train the spiking CNN (surrogate gradients, Brevitas weights) and export it."""
    from .fileio import check_output_folder
    from .quant.snn import train_snn
    from .snn_bundle import save_snn_bundle
    from .report.console import long_step
    check_output_folder(out, force)
    with long_step("training the spiking CNN", live=False):
        r = train_snn(n_steps=steps, epochs=epochs, w_bits=w_bits, v_bits=v_bits, seed=seed,
                      data=data, progress=True, log=console.print, ksize=ksize,
                      stride=stride, padding=padding)
    path = save_snn_bundle(r.net, out, force)
    console.print(f"torch acc {r.torch_acc:.4f}, integer reference acc {r.ref_acc:.4f}; "
                  f"bundle {path}")


@snn_app.command()
def demo(out: Path = typer.Option(Path("cimstack-out"), help="folder for bundle and reports"),
         steps: int = typer.Option(16, min=1), epochs: int = typer.Option(6, **EPOCHS),
         w_bits: int = typer.Option(8, **TRAIN_BITS), v_bits: int = typer.Option(16, **TRAIN_BITS),
         backend: str = typer.Option("emu", help="csim, emu, board or auto",
                                     callback=_verify_backend),
         verify_samples: int = typer.Option(8, help="test samples run on the kernel", min=1),
         bundle: Optional[Path] = typer.Option(None, help="skip training: use this bundle"),
         data: Optional[Path] = typer.Option(None, help=DATA_HELP),
         fit: Optional[str] = SNN_FIT, seed: int = typer.Option(0, **SEED),
         force: bool = typer.Option(False, "--force", help=FORCE_WRITE_HELP)):
    """Train, export, run on the emulated overlay and verify; print the figures; write
    snn_demo.json and refresh the report (OUT/report)."""
    from .data import load_events
    from .fileio import claim_folder, write_json_atomic
    from .report.console import long_step
    from .snn_bundle import load_snn_bundle, save_snn_bundle
    claim_folder(out, force, kind="run")
    if bundle is None:
        from .quant.snn import train_snn
        with long_step("training the spiking CNN", live=False):
            r = train_snn(n_steps=steps, epochs=epochs, w_bits=w_bits, v_bits=v_bits,
                          seed=seed, data=data, progress=True, log=console.print)
        net = r.net
        console.print(f"torch (Brevitas) test acc {r.torch_acc:.4f}")
        save_snn_bundle(net, out / "snn_bundle", force)
    else:
        net = load_snn_bundle(bundle)
        steps = int(net.meta.get("n_steps", steps))
    frames, labels = load_events(net, data, steps, None, seed, fit=fit)
    ev = evaluate(net, frames, labels)
    console.print(f"integer reference: accuracy {ev['accuracy']:.4f} on {len(labels)} test "
                  f"samples, {ev['input_events']:,} input events, {ev['sops']:,} synaptic ops, "
                  f"{ev['events_per_s']:,.0f} events/s ({ev['seconds']:.2f} s)")
    cost = ev["cost"]
    console.print(_layer_table(cost, "per layer: dataflow and operand traffic"))
    console.print(f"cost model at {net.spec.clock_mhz:g} MHz: {cost['cycles']:,} cycles, "
                  f"{cost['model_events_per_s']:,.0f} events/s, "
                  f"{cost['model_sops_per_s'] / 1e9:.3f} GSOP/s")
    with long_step(f"verifying {verify_samples} samples on {backend}"):
        rep = verify_snn(net, frames[:verify_samples], backend)
    console.print(verify_summary(rep))
    json_path = out / "snn_demo.json"
    write_json_atomic(json_path, {
        "accuracy": ev["accuracy"], "input_events": ev["input_events"], "sops": ev["sops"],
        "events_per_s": ev["events_per_s"], "cost": cost, "verify": rep,
        "n_steps": steps, "w_bits": w_bits, "v_bits": v_bits})
    console.print(f"figures: {json_path}" + ("" if bundle else f"   bundle: {out / 'snn_bundle'}"))
    from .demo import report_stage
    console.print(f"report: {report_stage(out, force).index}")
    if not rep["ok"]:
        raise typer.Exit(1)


@snn_app.command("verify")
def verify_cmd(bundle: Path = typer.Argument(..., help="SNN bundle folder"),
               backend: str = typer.Option("emu", help="csim, emu, board or auto",
                                             callback=_verify_backend),
               samples: int = typer.Option(8, min=1), data: Optional[Path] = typer.Option(
                   None, help=DATA_HELP), fit: Optional[str] = SNN_FIT,
               bitfile: Optional[Path] = typer.Option(None, help="overlay bitstream for "
                                                      "--backend board", callback=overlay_file),
               report: Path = typer.Option(Path("cimstack-out/verify"),
                                           help="folder for verify.json and verify.txt"),
               force: bool = typer.Option(False, "--force", help=FORCE_WRITE_HELP)):
    """A bundle on the kernel vs the integer reference, spike for spike; writes
    verify.json and verify.txt into --report."""
    from .data import snn_inputs
    from .report.console import long_step
    from .snn_bundle import load_snn_bundle
    from .verify.compare import check_report_folder
    check_report_folder(report, force)
    net = load_snn_bundle(bundle)
    frames, _, source = snn_inputs(net, data, limit=samples, fit=fit)
    console.print(f"inputs: {source}")
    with long_step(f"verifying {len(frames)} samples on {backend}"):
        rep = verify_snn(net, frames, backend, bitfile=bitfile)
    write_verify(rep, net.name, report, force)
    console.print(verify_summary(rep))
    console.print(f"report: {report}/verify.json")
    if not rep["ok"]:
        raise typer.Exit(1)


def membrane_sweep(net, frames, labels, widths=range(16, 5, -1)) -> list[dict]:
    """Accuracy and operand traffic of ``net`` re-expressed for each membrane width."""
    from .quant.snn_export import narrow_membranes
    rows = []
    for vb in widths:
        n = narrow_membranes(net, vb)
        ev = evaluate(n, frames, labels)
        rows.append({"v_bits": vb, "accuracy": ev["accuracy"],
                     "traffic_bits": ev["cost"]["traffic_bits"], "cycles": ev["cost"]["cycles"],
                     "membrane_traffic_bits": sum(r["membrane_traffic_bits"]
                                                  for r in ev["cost"]["layers"]),
                     "weight_traffic_bits": sum(r["weight_traffic_bits"]
                                                for r in ev["cost"]["layers"]),
                     "dataflows": [r["dataflow"] for r in ev["cost"]["layers"]],
                     "thetas": [l.theta for l in n.spiking_layers]})
    return rows


@snn_app.command()
def sweep(bundle: Path = typer.Argument(..., help="SNN bundle folder (16-bit membranes)"),
          data: Optional[Path] = typer.Option(None, help=DATA_HELP), fit: Optional[str] = SNN_FIT,
          out: Optional[Path] = typer.Option(None, "--json", help="write the rows as JSON")):
    """Membrane width 16 down to 6 bits: accuracy and operand traffic."""
    from .data import load_events
    from .fileio import write_json_atomic
    from .snn_bundle import load_snn_bundle
    net = load_snn_bundle(bundle)
    frames, labels = load_events(net, data, fit=fit)
    rows = membrane_sweep(net, frames, labels)
    console.print(rich_table("membrane width sweep",
                             ["v_bits", "accuracy", "traffic bits", "cycles", "dataflows"],
                             [[str(r["v_bits"]), f"{r['accuracy']:.4f}", f"{r['traffic_bits']:,}",
                               f"{r['cycles']:,}", ",".join(r["dataflows"])] for r in rows],
                             right=[True] * 5))
    if out:
        write_json_atomic(out, {"rows": rows})
