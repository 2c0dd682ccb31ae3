"""``cimstack study ...``: the typer sub-app (mounted by the main CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..config import AcimSpec
from ..errors import ConfigError
from ..flags import (EPOCHS_MAX, FORCE_WRITE_HELP, SEARCH_HOLDOUT, SEED_MAX, finite,
                     knob_limits, knob_range)
from ..report.console import console, long_step

study_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Parameter sweeps with CSV tables and PNG plots.")


@study_app.callback()
def _study() -> None:
    """Parameter sweeps with CSV tables and PNG plots."""


@study_app.command("analog")
def analog(out: Path = typer.Option(Path("cimstack-out/study-analog"), help="output folder"),
           parts: str = typer.Option("enob,sigma,bits",
                                     help="comma-separated: enob, sigma, bits"),
           quick: bool = typer.Option(False, help="small sweeps (smoke test)"),
           active_rows: int = typer.Option(144, help="rows the effective-bits layer uses",
                                           **knob_limits(AcimSpec, "rows")),
           adc_bits: int = typer.Option(4, help="ADC bits of the accuracy-vs-sigma study",
                                        **knob_limits(AcimSpec, "adc_bits")),
           train_sigma: float = typer.Option(2.0, help="noise (LSB) of noise-aware training",
                                             callback=finite(*knob_range(AcimSpec, "sigma"))),
           epochs: Optional[int] = typer.Option(None, help="analog fine-tuning epochs",
                                                min=1, max=EPOCHS_MAX),
           seed: int = typer.Option(0, min=0, max=SEED_MAX),
           force: bool = typer.Option(False, "--force", help=FORCE_WRITE_HELP)):
    """Analog macro: effective ADC bits (fixed vs adaptive swing), accuracy vs noise
    sigma (noise-aware vs unaware), accuracy vs ADC bits."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .analog import run_analog_study, study_steps
    chosen = [p.strip() for p in parts.split(",") if p.strip()]
    with long_step("analog study", live=False) as step, \
            Progress(TextColumn("{task.description}"), BarColumn(),
                     TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                     console=console) as bar:
        task = bar.add_task("analog study", total=study_steps(chosen, quick))

        def progress(desc: str, steps: int = 1) -> None:
            bar.update(task, advance=steps, description=desc)
            step.update(f"analog study: {desc}")      # plain lines when piped

        summary = run_analog_study(out, chosen, quick=quick, active_rows=active_rows,
                                   sigma_adc_bits=adc_bits, train_sigma=train_sigma,
                                   epochs=epochs, seed=seed, progress=progress, force=force)
    if "enob" in summary:
        rec = summary["enob"]["recovered_bits_at"]
        console.print(f"bits recovered by split + ABN (expected "
                      f"{summary['enob']['expected_gain_bits']:.2f}): "
                      + ", ".join(f"{a}b: {v:.2f}" for a, v in rec.items()))
    console.print(f"results in {out}")


def _cell(change) -> str:
    """A table cell: the accuracy change in points, or why the layer cannot take it."""
    if change is None:
        return ""
    if change.delta is None:
        return f"n/a ({change.note})"
    value = f"{100 * change.value:.0f}%" if change.change == "sparsity" else f"{change.value}b"
    return f"{value}: {100 * change.delta:+.1f}"


def _labelled_images(b, data: Optional[Path], what: str):
    """The labelled images of the bundle ``b``: ``(x, y, source)``."""
    from ..data import load_images
    x, y, source = load_images(b, data)
    if y is None:
        raise ConfigError(f"{source}: {what} needs labels; give --data an .npz with y "
                          "(integer labels, one per image)")
    return x, y, source


def sensitivity_command(
        bundle: Path = typer.Argument(..., help="bundle folder (dcim, acim or mixed)"),
        data: Optional[Path] = typer.Option(
            None, help="an .npz with x (float images) and y (labels), images the model was "
                       "not trained on; default: the digits test split"),
        adc_bits: Optional[int] = typer.Option(None, help="ADC bits of a layer moved to acim "
                                               "(default: the bundle's AcimSpec)",
                                               **knob_limits(AcimSpec, "adc_bits")),
        noise: Optional[float] = typer.Option(None, help="analog noise sigma in LSB for every "
                                              "acim layer (default: the bundle's)",
                                              callback=finite(*knob_range(AcimSpec, "sigma"))),
        w_bits: Optional[int] = typer.Option(None, help="lowered weight bits (default: one "
                                             "less than each layer's)", min=2, max=7),
        x_bits: Optional[int] = typer.Option(None, help="lowered input bits (default: one "
                                             "less than each layer's)", min=1, max=7),
        sparsity: Optional[float] = typer.Option(
            None, help="raised block sparsity of a dcim layer, a fraction (default: the "
                       "layer's own plus 0.25)", callback=finite(0.0, 1.0, below_hi=True)),
        lowered_adc_bits: Optional[int] = typer.Option(
            None, help="lowered ADC bits of a layer already on acim (default: one less than "
                       "its own)", **knob_limits(AcimSpec, "adc_bits")),
        out: Optional[Path] = typer.Option(None, help="write the result as JSON")):
    """Per macro layer, the accuracy change when only that layer moves to the analog
    macro, loses precision (w_bits, x_bits, an acim layer's ADC bits) or is block-pruned
    (sparsity), on the integer reference."""
    from ..bundle import load_bundle
    from ..fileio import check_output_file, write_json_atomic
    from ..report.console import rich_table
    from .sensitivity import CHANGES, sensitivity
    if out is not None:
        check_output_file(out)
    b = load_bundle(bundle)
    x, y, source = _labelled_images(b, data, "the sensitivity study")
    with long_step("sensitivity") as step:
        res = sensitivity(b, x, y, source=source, sigma=noise, adc_bits=adc_bits,
                          w_bits=w_bits, x_bits=x_bits, sparsity=sparsity,
                          lowered_adc_bits=lowered_adc_bits, progress=step.update)
    by = {(c.layer, c.change): c for c in res.changes}
    rows = [(layer.name, layer.macro, f"W{layer.w_bits} X{layer.x_bits}",
             *(_cell(by.get((layer.name, change))) for change in CHANGES))
            for layer in b.macro_layers]
    console.print(rich_table(
        f"sensitivity of {b.name}: accuracy change in points (baseline "
        f"{100 * res.baseline:.1f}% on {res.images} images)",
        ["layer", "macro", "bits", f"to acim ({res.adc_bits}b ADC, sigma {res.sigma:g})",
         "w_bits lowered", "x_bits lowered", "sparsity raised", "ADC bits lowered"], rows,
        right=[False, False, False, True, True, True, True, True]))
    console.print(f"images: {source}")
    if out is not None:
        write_json_atomic(out, res.to_dict())
        console.print(f"written: {out}")


def search_command(
        bundle: Path = typer.Argument(..., help="bundle folder (dcim, acim or mixed), or a "
                                      "QONNX model (.onnx: imported on dcim into OUT/base)"),
        objective: str = typer.Option("accuracy,energy", help="accuracy and one or more "
                                      "of energy, latency, area: the front's objectives"),
        budget: int = typer.Option(200, help="candidates to evaluate", min=1),
        out: Path = typer.Option(Path("cimstack-out/search"), help="output folder; "
                                 "candidates already in it are not evaluated again"),
        data: Optional[Path] = typer.Option(
            None, help="an .npz with x (float images) and y (labels); default: the digits "
                       "test split"),
        noise: Optional[float] = typer.Option(None, help="analog noise sigma in LSB for every "
                                              "acim layer (default: the bundle's)",
                                              callback=finite(*knob_range(AcimSpec, "sigma"))),
        min_accuracy: float = typer.Option(0.0, help="keep candidates below this accuracy "
                                           "(a fraction) out of the front",
                                           callback=finite(0.0, 1.0)),
        holdout: float = typer.Option(
            SEARCH_HOLDOUT, help="share of the labelled images kept out of the search: they "
                                 "only measure the front's held-out accuracy (0: none)",
            callback=finite(0.0, 1.0, below_hi=True)),
        seed: int = typer.Option(0, help="seed of the evolutionary refinement", min=0,
                                 max=SEED_MAX),
        workers: Optional[int] = typer.Option(None, help="local pool processes (default: "
                                              "one per core; 0: run in this process)", min=0),
        cluster: Optional[str] = typer.Option(None, help="a running Dask scheduler, "
                                              "tcp://HOST:PORT: evaluate on its workers"),
        macro: Optional[str] = typer.Option(
            None, help="with MODEL.onnx: the macro family the import puts its layers on, "
                       "dcim or acim (default dcim; as cimstack import)"),
        sets: List[str] = typer.Option([], "--set", help="with MODEL.onnx: KNOB=VALUE of "
                                       "that macro for the import (as cimstack import)"),
        force: bool = typer.Option(False, "--force", help=FORCE_WRITE_HELP)):
    """Per-layer design search: which macro layers go analog, at which precision; writes
    the accuracy/cost Pareto front (front.csv, front.json), every candidate and the knee
    point's bundle (docs/sweep.md, "Design search")."""
    from ..report.console import rich_table
    from .search import check_objectives, run_search, search_base
    check_objectives(objective)
    b = search_base(bundle, out, force, macro, sets)
    x, y, source = _labelled_images(b, data, "the search")
    try:
        with long_step("search") as step:
            res = run_search(b, x, y, out, objectives=objective, budget=budget, seed=seed,
                             sigma=noise, min_accuracy=min_accuracy, holdout=holdout,
                             source=source,
                             workers=workers, cluster=cluster,
                             progress=lambda n, total, what: step.update(
                                 f"search: {n}/{total} {what}"), force=force)
    except KeyboardInterrupt:
        console.print(f"interrupted: evaluated candidates are kept in {out / 'candidates'}; "
                      "run the same command again to resume")
        raise typer.Exit(130)
    held = res.held_images > 0
    rows = [(str(c.index), f"{100 * c.accuracy:.1f}%",
             *((f"{100 * c.held_out_accuracy:.1f}%" if c.held_out_accuracy is not None
                else "n/a",) if held else ()), f"{c.energy_pj / 1e3:,.3f}",
             f"{c.latency_s * 1e9:,.1f}", f"{c.area_mm2:.3f}",
             ("knee " if c is res.knee else "") + "; ".join(s.label() for s in c.settings))
            for c in res.front]
    console.print(rich_table(
        f"{b.name}: Pareto front of {len(res.candidates)} candidates ({', '.join(res.objectives)})",
        ["#", "accuracy", *(("held-out",) if held else ()), "nJ/image", "latency ns",
         "area mm^2", f"assignment ({', '.join(res.names)})"], rows,
        right=[True] * (6 if held else 5) + [False]))
    ran = (f"{res.computed} evaluated ({res.engine})" if res.engine else
           "nothing to evaluate")
    console.print(f"{ran}, {len(res.candidates) - res.computed} from {res.out / 'candidates'}; "
                  f"images: {source}, {res.images} guided the search"
                  + (f", {res.held_images} held out (front.json: held_out)" if held else ""))
    console.print(f"written: {res.out / 'front.csv'}, front.json, candidates.json, "
                  f"sensitivity.json, knee bundle {res.out / 'knee'}")


def _training_images(bundle, train_data: Optional[Path]):
    """The labelled images to fine-tune ``bundle`` on: ``--train-data``, else the digits
    training split for a bundle of the digits' input."""
    from ..data import DIGITS_SHAPE, load_images
    if train_data is None:
        if tuple(bundle.input.shape) != DIGITS_SHAPE:
            raise ConfigError(f"bundle {bundle.name} takes {tuple(bundle.input.shape)} "
                              "inputs, not the digits'; give --train-data an .npz with x and "
                              "y to train on")
        from ..quant.data import load_digits_split
        split = load_digits_split()
        return split.x_train, split.y_train
    x, y, _ = load_images(bundle, train_data, flag="--train-data")
    if y is None:
        raise ConfigError(f"--train-data {train_data}: no labels y; training needs them")
    return x, y


def finetune_command(
        checkpoint: Optional[Path] = typer.Argument(
            None, help="checkpoint written by `cimstack train --checkpoint` (the network the "
                       "search ran on); without it the candidate bundle itself is trained"),
        assignment: str = typer.Option(..., help="the search's choice: OUT/knee (a bundle "
                                       "folder) or OUT/front.json#N (front point N)"),
        out: Path = typer.Option(Path("cimstack-out/finetuned"), help="bundle folder to write"),
        epochs: Optional[int] = typer.Option(None, help="fine-tuning epochs (default 3)",
                                             min=1, max=EPOCHS_MAX),
        seed: int = typer.Option(0, min=0, max=SEED_MAX),
        data: Optional[Path] = typer.Option(
            None, help="an .npz with x (float images) and y (labels) for the accuracies; "
                       "default: the digits test split"),
        train_data: Optional[Path] = typer.Option(
            None, help="an .npz with x and y to train on, without a checkpoint; default: "
                       "the digits training split (for a bundle of the digits' input)"),
        force: bool = typer.Option(False, "--force", help=FORCE_WRITE_HELP)):
    """Noise-aware fine-tuning of a searched assignment, the analog layers trained with the
    macro's ADC and noise: from its Brevitas checkpoint, or without one the candidate
    bundle itself (any network); prints the accuracy before (the search's candidate) and
    after (the written bundle) on the same images."""
    from ..bundle import save_bundle
    from ..data import load_images
    from ..fileio import check_output_folder
    from ..quant.checkpoint import load_checkpoint
    from .finetune import (candidate_bundle, finetune, finetune_bundle, graph_candidate,
                           read_assignment)
    check_output_folder(out, force)
    source = read_assignment(assignment)
    if checkpoint is not None and train_data is not None:
        raise ConfigError("--train-data: a checkpoint's network trains on the digits "
                          "training split; drop --train-data, or the checkpoint to train "
                          "the candidate bundle itself")
    ck = load_checkpoint(checkpoint) if checkpoint is not None else None
    before = candidate_bundle(ck, source) if ck is not None else graph_candidate(source)
    if ck is None:
        x_train, y_train = _training_images(before, train_data)
    x, y, images = load_images(before, data)
    if y is None:
        raise ConfigError(f"{images}: fine-tuning needs labels; give --data an .npz with y")
    kwargs = {"seed": seed, "images": x, "labels": y, **({"epochs": epochs} if epochs else {})}
    with long_step("fine-tuning"):
        res = (finetune(ck, source, **kwargs) if ck is not None else
               finetune_bundle(before, x_train, y_train, **kwargs))
    path = save_bundle(res.after, out, force)
    console.print(f"assignment: {res.assignment}")
    console.print(f"accuracy before {100 * res.accuracy_before:.2f}% (the search's candidate), "
                  f"after {100 * res.accuracy_after:.2f}% (fine-tuned), integer reference, "
                  f"{res.images} images: {images}")
    console.print(f"bundle: {path}")
