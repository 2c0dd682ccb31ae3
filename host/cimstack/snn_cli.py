"""``cimstack snn ...``: the spiking event core from the command line.

    cimstack snn demo     train, export, run on the emulated overlay, verify
    cimstack snn train    train the spiking CNN and write an SNN bundle
    cimstack snn verify   a bundle on a backend (csim / emu / board) vs the reference
    cimstack snn sweep    membrane width 16..6 bits: accuracy and operand traffic

Data: the built-in event digits (generated once and cached), or ``--data PATH`` with
an extracted N-MNIST (or DVS Gesture) folder. Nothing is downloaded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from .report.console import console, rich_table

snn_app = typer.Typer(add_completion=False, no_args_is_help=True,
                      help="Spiking event core (FlexSpIM family): train, run, verify, sweep.")


def _test_frames(data: Optional[Path], n_steps: int, limit: Optional[int], seed: int = 0):
    from .events.datasets import load_event_data
    ds = load_event_data(data, "test", limit, seed)
    return ds.frames(n_steps), ds.labels


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


def verify_snn(net, frames, backend: str = "emu", timeout_s: float = 10.0) -> dict:
    """Run ``net`` on the kernel through ``backend`` and compare every layer's spikes
    and the last layer's membranes with the reference."""
    from .hw.snn import open_snn_runner
    from .ref.snn import run_snn
    ref = run_snn(net, frames, keep_spikes=True)
    runner = open_snn_runner(backend, timeout_s=timeout_s)
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


def _print_verify(rep: dict) -> None:
    console.print(f"verify on {rep['backend']}: {rep['samples']} samples, "
                  f"{'BIT-EXACT' if rep['ok'] else 'MISMATCH'} ({rep['seconds']:.1f} s)")
    for l in rep["layers"]:
        console.print(f"  {l['layer']:<8} {l['mismatches']:>8} / {l['elements']} mismatching")
    console.print(f"  final membranes: {rep['membrane_mismatches']} mismatching")


@snn_app.command()
def train(out: Path = typer.Option(Path("cimstack-out/snn_bundle"), help="SNN bundle folder"),
          steps: int = typer.Option(16, help="timesteps per sample"),
          epochs: int = typer.Option(6), w_bits: int = typer.Option(8),
          v_bits: int = typer.Option(16), seed: int = typer.Option(0),
          data: Optional[Path] = typer.Option(None, help="N-MNIST folder; default built-in")):
    """Train the spiking CNN (surrogate gradients, Brevitas weights) and export it."""
    from .quant.snn import train_snn
    from .snn_bundle import save_snn_bundle
    r = train_snn(n_steps=steps, epochs=epochs, w_bits=w_bits, v_bits=v_bits, seed=seed,
                  data=data, progress=True, log=console.print)
    path = save_snn_bundle(r.net, out)
    console.print(f"torch acc {r.torch_acc:.4f}, integer reference acc {r.ref_acc:.4f}; "
                  f"bundle {path}")


@snn_app.command()
def demo(out: Path = typer.Option(Path("cimstack-out"), help="folder for bundle and reports"),
         steps: int = typer.Option(16), epochs: int = typer.Option(6),
         w_bits: int = typer.Option(8), v_bits: int = typer.Option(16),
         backend: str = typer.Option("emu", help="csim, emu, board or auto"),
         verify_samples: int = typer.Option(8, help="test samples run on the kernel"),
         bundle: Optional[Path] = typer.Option(None, help="skip training: use this bundle"),
         data: Optional[Path] = typer.Option(None, help="N-MNIST folder; default built-in"),
         seed: int = typer.Option(0)):
    """Train, export, run on the emulated overlay and verify; print the figures."""
    from .report.io import write_json_atomic
    from .snn_bundle import load_snn_bundle, save_snn_bundle
    if bundle is None:
        from .quant.snn import train_snn
        r = train_snn(n_steps=steps, epochs=epochs, w_bits=w_bits, v_bits=v_bits, seed=seed,
                      data=data, progress=True, log=console.print)
        net = r.net
        console.print(f"torch (Brevitas) test acc {r.torch_acc:.4f}")
        save_snn_bundle(net, out / "snn_bundle")
    else:
        net = load_snn_bundle(bundle)
        steps = int(net.meta.get("n_steps", steps))
    frames, labels = _test_frames(data, steps, None, seed)
    ev = evaluate(net, frames, labels)
    console.print(f"integer reference: accuracy {ev['accuracy']:.4f} on {len(labels)} test "
                  f"samples, {ev['input_events']:,} input events, {ev['sops']:,} synaptic ops, "
                  f"{ev['events_per_s']:,.0f} events/s ({ev['seconds']:.2f} s)")
    cost = ev["cost"]
    console.print(_layer_table(cost, "per layer: dataflow and operand traffic"))
    console.print(f"cost model at {net.spec.clock_mhz:g} MHz: {cost['cycles']:,} cycles, "
                  f"{cost['model_events_per_s']:,.0f} events/s, "
                  f"{cost['model_sops_per_s'] / 1e9:.3f} GSOP/s")
    rep = verify_snn(net, frames[:verify_samples], backend)
    _print_verify(rep)
    write_json_atomic(out / "snn_demo.json", {
        "accuracy": ev["accuracy"], "input_events": ev["input_events"], "sops": ev["sops"],
        "events_per_s": ev["events_per_s"], "cost": cost, "verify": rep,
        "n_steps": steps, "w_bits": w_bits, "v_bits": v_bits})
    if not rep["ok"]:
        raise typer.Exit(1)


@snn_app.command("verify")
def verify_cmd(bundle: Path = typer.Argument(..., help="SNN bundle folder"),
               backend: str = typer.Option("emu", help="csim, emu, board or auto"),
               samples: int = typer.Option(8), data: Optional[Path] = typer.Option(None)):
    """A bundle on the kernel vs the integer reference, spike for spike."""
    from .snn_bundle import load_snn_bundle
    net = load_snn_bundle(bundle)
    frames, _ = _test_frames(data, int(net.meta.get("n_steps", 16)), samples)
    rep = verify_snn(net, frames, backend)
    _print_verify(rep)
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
          data: Optional[Path] = typer.Option(None), out: Optional[Path] = typer.Option(
              None, "--json", help="write the rows as JSON")):
    """Membrane width 16 down to 6 bits: accuracy and operand traffic."""
    from .report.io import write_json_atomic
    from .snn_bundle import load_snn_bundle
    net = load_snn_bundle(bundle)
    frames, labels = _test_frames(data, int(net.meta.get("n_steps", 16)), None)
    rows = membrane_sweep(net, frames, labels)
    console.print(rich_table("membrane width sweep",
                             ["v_bits", "accuracy", "traffic bits", "cycles", "dataflows"],
                             [[str(r["v_bits"]), f"{r['accuracy']:.4f}", f"{r['traffic_bits']:,}",
                               f"{r['cycles']:,}", ",".join(r["dataflows"])] for r in rows],
                             right=[True] * 5))
    if out:
        write_json_atomic(out, {"rows": rows})
