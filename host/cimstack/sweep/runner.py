"""Run a sweep: train each distinct model once, evaluate every point, keep every result.

Output folder ``OUT``::

    points/<point>.json     one finished point (params, metrics, per-layer cost), written
                            atomically as soon as it finishes: what a re-run resumes from
    models/<model>/         each trained model as an exported bundle (resume skips its
                            training)
    results.csv / .json     one row per point, rebuilt from points/ at the end
    layers.csv              per-layer cost rows of every point

The driver does all file work; tasks get and return plain data, so the workers of a
cluster need no shared filesystem.
"""

from __future__ import annotations

import json
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import BundleError, ConfigError
from ..fileio import claim_folder, write_csv_atomic, write_json_atomic
from .engines import SweepError, cluster_address, open_engine
from .grid import expand, normalize
from .points import Point, Schedule, model_id, point_id
from .tasks import evaluate_point, train_model, trainer_of

PARAM_COLUMNS = ("macro", "w_bits", "x_bits", "v_bits", "adc_bits", "train_sigma", "sigma",
                 "sparsity", "rows_on", "dataflow", "macros", "policy", "input_sparsity",
                 "downsample", "steps", "samples", "seed")
METRIC_COLUMNS = ("accuracy", "energy_pj", "latency_s", "tops_per_w", "ops", "cycles",
                  "fpga_images_per_s", "dma_bound_images_per_s", "traffic_bits",
                  "traffic_vs_ws", "resident_bits", "resident_vs_ws", "dram_bits",
                  "dram_vs_ws", "energy_vs_ws")
COLUMNS = ("point", *PARAM_COLUMNS, *METRIC_COLUMNS, "seconds")
POINT_TIMEOUT = 3600.0


@dataclass(frozen=True)
class SweepProgress:
    """Where a sweep stands; passed to the ``progress`` callback after every step."""

    done: int           # points finished, skipped ones included
    total: int
    skipped: int        # points found finished in OUT/points (resume)
    failed: int
    models_done: int    # models trained or found in OUT/models
    models_total: int
    current: str        # what just happened


@dataclass
class SweepResult:
    """The rows of ``results.csv`` and where the files are."""

    out: Path
    rows: list[dict[str, Any]]
    skipped: int
    computed: int
    models_trained: int
    failed: list[dict[str, Any]] = field(default_factory=list)
    engine: str | None = None

    results_csv: Path = field(init=False)
    results_json: Path = field(init=False)
    layers_csv: Path = field(init=False)
    points_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.results_csv, self.results_json, self.layers_csv, self.points_dir = (
            self.out / "results.csv", self.out / "results.json", self.out / "layers.csv",
            self.out / "points")


@dataclass
class _Plan:
    point: Point
    pid: str           # point id
    mid: str           # model id


@dataclass
class _Tally:
    done: int                                  # points finished, skipped ones included
    failed: list = field(default_factory=list)
    models: int = 0                            # models ready (trained or from OUT/models)
    trained: int = 0


def _read_json(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _finished(out: Path, plan: _Plan, schedule: dict) -> dict | None:
    """The point file of ``plan`` when it exists and holds this point's results."""
    doc = _read_json(out / "points" / f"{plan.pid}.json")
    if doc and doc.get("params") == plan.point.params() and doc.get("schedule") == schedule \
            and isinstance(doc.get("metrics"), dict):
        return doc
    return None


def _model_meta(plan: _Plan, schedule: dict) -> dict:
    return {"id": plan.mid, "params": plan.point.model_params(), "schedule": schedule}


def _load_model(folder: Path, meta: dict):
    """A model trained by an earlier run, or None (missing, damaged or another model)."""
    from ..bundle import load_bundle
    from ..snn_bundle import is_snn_bundle, load_snn_bundle
    if not folder.is_dir():
        return None
    try:
        model = load_snn_bundle(folder) if is_snn_bundle(folder) else load_bundle(folder)
    except BundleError:
        return None
    return model if model.meta.get("sweep_model") == meta else None


def _save_model(folder: Path, model, meta: dict) -> None:
    from ..bundle import save_bundle
    from ..ref.snn import SnnNet
    from ..snn_bundle import save_snn_bundle
    model.meta = {**model.meta, "sweep_model": meta}
    (save_snn_bundle if isinstance(model, SnnNet) else save_bundle)(model, folder)


def run_sweep(grid: dict[str, Any], out: str | Path, *, workers: int | None = None,
              cluster: str | None = None, quick: bool = False, epochs: int | None = None,
              progress: Callable[[SweepProgress], None] | None = None,
              point_timeout: float = POINT_TIMEOUT,
              connect_timeout: float = 10.0, force: bool = False) -> SweepResult:
    """Run every point of ``grid`` (see :mod:`.grid`) into ``out``; points already in
    ``out/points`` are skipped. ``cluster`` (``tcp://HOST:PORT``) runs the tasks on that
    Dask scheduler's workers, else a local pool of ``workers`` processes. ``quick`` /
    ``epochs`` shorten training. When no task finishes for ``point_timeout`` seconds the
    sweep stops with :class:`SweepError`; finished points are kept either way. ``out``
    must be a sweep folder (or new or empty): a folder of other files needs ``force``."""
    for name, value in (("point_timeout", point_timeout), ("connect_timeout", connect_timeout)):
        if not value > 0:
            raise ConfigError(f"{name} = {value!r}: give a time limit in seconds above 0")
    if cluster is not None:
        cluster_address(cluster)                  # a malformed address fails before any work
    out = claim_folder(out, force, kind="sweep")
    schedule = Schedule.make(quick, epochs)
    grid = normalize(grid)
    plans = [_Plan(p, point_id(p, schedule), model_id(p, schedule)) for p in expand(grid)]
    scheds = {m: schedule.for_macro(m) for m in grid}
    docs = {pl.pid: d for pl in plans
            if (d := _finished(out, pl, scheds[pl.point.macro])) is not None}
    todo = [pl for pl in plans if pl.pid not in docs]
    tally = _Tally(done=len(docs))
    models_total = len({pl.mid for pl in todo})

    def report(current: str) -> None:
        if progress is not None:
            progress(SweepProgress(tally.done, len(plans), len(docs), len(tally.failed),
                                   tally.models, models_total, current))

    engine = open_engine(workers, cluster, connect_timeout) if todo else None
    report(f"{len(docs)} of {len(plans)} points already in {out / 'points'}" if docs
           else f"{len(plans)} points, {models_total} models to train")
    if engine is not None:
        try:
            _execute(engine, todo, out, scheds, tally, report, point_timeout)
        except BaseException:
            engine.close(cancel=True)
            raise
        engine.close()
    rows, layers, results = _collect(out, plans, scheds)
    _write_tables(out, grid, rows, layers, results, tally.failed)
    return SweepResult(out, rows, skipped=len(docs), computed=len(todo) - len(tally.failed),
                       models_trained=tally.trained, failed=tally.failed,
                       engine=engine.name if engine else None)


def _execute(engine, todo: list[_Plan], out: Path, scheds: dict, tally: _Tally,
             report: Callable[[str], None], point_timeout: float) -> None:
    """Train the missing models, evaluate the points of each as soon as it is ready,
    write every finished point; task errors become failed points."""
    by_model: dict[str, list[_Plan]] = {}
    for pl in todo:
        by_model.setdefault(pl.mid, []).append(pl)
    pending: dict[Any, tuple[str, _Plan | str]] = {}

    def submit_points(mid: str, model) -> None:
        model = engine.share(model)
        for pl in by_model[mid]:
            fut = engine.submit(evaluate_point, pl.point.params(), model,
                                scheds[pl.point.macro], tag=f"point-{pl.pid}")
            pending[fut] = ("point", pl)

    def fail(pl: _Plan, error: str) -> None:
        tally.failed.append({"point": pl.pid, "params": pl.point.params(), "error": error})
        report(f"FAILED {_label(pl.point)}: {error}")

    found = {mid: _load_model(out / "models" / mid,
                              _model_meta(plans[0], scheds[plans[0].point.macro]))
             for mid, plans in by_model.items()}          # models of earlier runs, or None
    for macro in {by_model[mid][0].point.macro for mid, m in found.items() if m is None}:
        trainer_of(macro)                   # a family without trainer: before any task
    for mid, model in found.items():
        first = by_model[mid][0]
        if model is not None:
            tally.models += 1
            submit_points(mid, model)
        else:
            pending[engine.submit(train_model, first.point.model_params(),
                                  scheds[first.point.macro], tag=f"train-{mid}")] = ("train", mid)
    while pending:
        done = engine.completed(list(pending), point_timeout)
        if not done:
            raise SweepError(
                f"no task finished within {point_timeout:g} s on the {engine.name}; finished "
                f"points are kept in {out / 'points'} (a re-run resumes); raise "
                "--point-timeout for longer trainings")
        for fut in done:
            kind, what = pending.pop(fut)
            try:
                value = fut.result()
            except BrokenProcessPool as exc:
                raise SweepError(f"the {engine.name} lost a worker process ({exc}); finished "
                                 f"points are kept in {out / 'points'}") from None
            except Exception as exc:                    # the task's own error
                error = f"{type(exc).__name__}: {exc}"
                for pl in (by_model[what] if kind == "train" else [what]):
                    fail(pl, error)
                continue
            if kind == "train":
                first = by_model[what][0]
                _save_model(out / "models" / what, value["model"],
                            _model_meta(first, scheds[first.point.macro]))
                tally.models += 1
                tally.trained += 1
                report(f"trained {what} ({value['seconds']:.1f} s)")
                submit_points(what, value["model"])
            else:
                pl = what
                write_json_atomic(out / "points" / f"{pl.pid}.json", {
                    "point": pl.pid, "model": pl.mid, "params": pl.point.params(),
                    "schedule": scheds[pl.point.macro], **value})
                tally.done += 1
                report(_label(pl.point))


def _label(point: Point) -> str:
    """``acim adc_bits=4 sigma=1.0 ...``: a point in one line."""
    return point.macro + " " + " ".join(f"{k}={v}" for k, v in point.to_dict().items())


def _row(point: Point, doc: dict) -> dict[str, Any]:
    params = point.columns()
    return {"point": doc["point"], **{c: params.get(c) for c in PARAM_COLUMNS},
            **{c: doc["metrics"].get(c) for c in METRIC_COLUMNS}, "seconds": doc["seconds"]}


def _collect(out: Path, plans: list[_Plan], scheds: dict):
    """Rows of the finished points of this grid, in grid order, from their files."""
    rows, layers, results = [], [], []
    for pl in plans:
        doc = _finished(out, pl, scheds[pl.point.macro])
        if doc is None:
            continue
        row = _row(pl.point, doc)
        rows.append(row)
        layers += [{"point": pl.pid, **lr} for lr in doc["layers"]]
        results.append({**row, "model": doc["model"], "layers": doc["layers"]})
    return rows, layers, results


def _write_tables(out: Path, grid: dict, rows: list, layers: list, results: list,
                  failed: list) -> None:
    columns: dict[str, None] = {"point": None, "layer": None}
    for lr in layers:
        columns.update(dict.fromkeys(lr))
    write_csv_atomic(out / "results.csv", rows, COLUMNS)
    write_csv_atomic(out / "layers.csv", layers, columns)
    write_json_atomic(out / "results.json", {"grid": grid, "columns": list(COLUMNS),
                                             "points": results, "failed": failed})
