"""Per-layer design search: which macro layers of a bundle go analog, at which weight,
input and ADC precision, for how much accuracy and energy.

A **candidate** gives every macro layer a :class:`Setting` (family dcim or acim,
``w_bits``, ``x_bits``, ``adc_bits`` for acim, block ``sparsity``). It is built from the
base bundle with the sensitivity study's transforms (:mod:`.sensitivity`): the inputs
lowered first (layer order), then the weights, then the block pruning of the layers whose
sparsity is above the base's, then the moves to acim, so an ADC sees the already
narrowed codes, and last the lowered ADCs of the layers already analog in the base
(:func:`~.sensitivity.lower_adc_bits`). Layers already analog keep their family (no
transform moves a layer back); their precisions and ADC bits are searched. A candidate
a transform refuses is kept with the reason and no figures.

Each candidate is **evaluated** for accuracy on the integer reference (the engine of
``cimstack run``) and for energy per inference, latency and area with
:func:`cimstack.cost.network_cost` (the totals ``cimstack cost`` prints). The labelled
images are split first (:func:`holdout_split`): the search sees only the guiding part,
so its accuracies are optimistic by selection; the front's points are then evaluated
once more on the **held-out** part, which chose nothing (``held_out_accuracy``).

**Strategy**: greedy steepest descent guided by per-layer sensitivities, then a small
seeded evolutionary refinement with the budget left.

1. Greedy: from the base, every one-step move of one layer (to acim at the spec's ADC
   bits, ADC one bit less, ``w_bits`` or ``x_bits`` one less, a dcim layer's block
   sparsity :data:`~.sensitivity.SPARSITY_STEP` higher up to :data:`MAX_SPARSITY`, when
   a row tile of it can lose a block at that sparsity (not a layer of one row group); a
   move to acim takes the sparsity back to the base's, as the analog macro skips no
   block) is evaluated: at the base
   these are the sensitivity study's figures. The move taken is the one that loses no
   accuracy and saves the most cost, else the one losing the least accuracy per relative
   cost saved (cost: the first objective after accuracy); the sensitivities are measured
   again at the new point, since layers interact (a narrower code helps the next ADC).
   It ends when no move lowers the cost without falling below the minimum accuracy
   (``min_accuracy``, default 0: the path runs down to collapse). Chosen because the
   moves are few per layer, each round is one batch of independent tasks (parallel on a
   pool or cluster), and every neighbour evaluated also adds to the front.
2. Evolutionary: generations of :data:`GENERATION` children, each a front point (the
   parents) with one to three random moves, up or down (so the greedy path's choices
   can be undone; a sparsity goes back down only to the base's), drawn from
   ``numpy.random.default_rng(seed)``; children already evaluated are drawn again.

The ``budget`` is the number of candidates evaluated, refused ones included; the
sequence of candidates depends only on the results before them, so a smaller budget
evaluates a prefix of a larger one's candidates and a resumed search gives the same
front. Every candidate is written to ``OUT/candidates/<id>.json`` as soon as it is
evaluated (a front point's held-out accuracy to ``<id>.held.json``; these do not count
towards the budget); a re-run takes those with the same base, images and noise from
there (files written before settings had a ``sparsity`` do not match and are evaluated
again).

The **front** holds the candidates (with at least ``min_accuracy``) no other one
dominates (at least as good in every objective, better in one); ties stay. The
**knee** is the front point farthest from the straight line between the front's two
ends, with accuracy and the first cost objective each scaled to [0, 1] over the front
(the best accuracy point when all lie on the line).
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..bundle import Bundle, bundle_digest, load_bundle, save_bundle
from ..config import AcimSpec, knob_bounds
from ..errors import CimstackError, ConfigError
from ..fileio import claim_folder, write_csv_atomic, write_json_atomic
from ..flags import SEARCH_HOLDOUT
from ..importer.cli import macro_spec
from ..importer.qonnx_import import check_macro, import_qonnx
from ..mapping.tiling import blocks_pruned_per_tile
from ..sweep.engines import SweepError, cluster_address, open_engine
from ..sweep.points import digest
from ..sweep.runner import POINT_TIMEOUT
from .sensitivity import (SPARSITY_DIGITS, SPARSITY_STEP, LayerChange, Sensitivity,
                          block_sparsity, lower_adc_bits, lower_w_bits, lower_x_bits,
                          prune_layer, to_acim)

# objective -> (metric, True when larger is better)
OBJECTIVES = {"accuracy": ("accuracy", True), "energy": ("energy_pj", False),
              "latency": ("latency_s", False), "area": ("area_mm2", False)}
METRICS = ("accuracy", "energy_pj", "latency_s", "area_mm2")
GENERATION = 8                # children per evolutionary generation
DRAWS = 50                    # tries per child to draw one not evaluated yet
MAX_SPARSITY = 0.75           # the highest block sparsity a move reaches
Progress = Callable[[int, int, str], None]       # (evaluated, budget, what)


@dataclass(frozen=True)
class Setting:
    """One macro layer's place in a candidate."""

    family: str               # dcim or acim
    w_bits: int
    x_bits: int
    adc_bits: int | None = None   # acim only
    sparsity: float = 0.0     # block sparsity (fraction of zero blocks), see .sensitivity

    def label(self) -> str:
        """``dcim W8 X8`` / ``acim W4 X4 A6`` / ``dcim W8 X8 S50%`` (block sparsity in
        whole percent)."""
        adc = f" A{self.adc_bits}" if self.family == "acim" else ""
        sparse = f" S{100 * self.sparsity:.0f}%" if self.sparsity else ""
        return f"{self.family} W{self.w_bits} X{self.x_bits}{adc}{sparse}"


Assignment = tuple  # of Setting, one per macro layer in layer order


def check_objectives(objectives: str | tuple) -> tuple[str, ...]:
    """The objectives of ``--objective`` (``accuracy,energy``) as a tuple; ConfigError
    unless accuracy and at least one cost objective are named, each once."""
    names = tuple(o.strip() for o in objectives.split(",")) if isinstance(objectives, str) \
        else tuple(objectives)
    if (set(names) - set(OBJECTIVES) or "accuracy" not in names or len(names) < 2
            or len(set(names)) < len(names)):
        raise ConfigError(f"--objective {','.join(names)}: give accuracy and one or more of "
                          f"energy, latency, area, each once (e.g. accuracy,energy)")
    return names


def holdout_split(labels: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """``(guide, held)``: ascending indices of the images that guide the search and of
    those held out. Per label, a fixed shuffle (``numpy.random.default_rng(0)``, the
    same on any machine and for any seed of the search) puts ``round(fraction * n)`` of
    its ``n`` images in the held-out part, so both parts keep the label mix. ConfigError
    unless ``0 <= fraction < 1`` and both parts get images (fraction 0: nothing held)."""
    if isinstance(fraction, bool) or not 0.0 <= float(fraction) < 1.0:
        raise ConfigError(f"--holdout {fraction!r}: give the share of the images to hold "
                          "out, a fraction in [0, 1) (0: none)")
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(0)
    held = []
    for value in np.unique(labels):
        idx = np.flatnonzero(labels == value)
        held.append(rng.permutation(idx)[:int(round(fraction * idx.size))])
    held = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    guide = np.setdiff1d(np.arange(labels.size), held)
    if fraction > 0 and (held.size == 0 or guide.size == 0):
        raise ConfigError(f"--holdout {fraction:g} of {labels.size} images leaves "
                          f"{guide.size} to guide the search and {held.size} held out; give "
                          "more images or another fraction (0: none held out)")
    return guide, held


def base_assignment(bundle: Bundle) -> Assignment:
    """The settings the bundle's macro layers have."""
    return tuple(Setting(layer.macro, layer.w_bits, layer.x_bits,
                         bundle.acim_for(layer).adc_bits if layer.macro == "acim" else None,
                         block_sparsity(bundle, layer))
                 for layer in bundle.macro_layers)


def apply_assignment(base: Bundle, assignment: Assignment, spec: AcimSpec) -> Bundle:
    """``base`` with every macro layer changed to its setting (module docstring);
    ConfigError when a transform refuses one."""
    layers = base.macro_layers
    base_settings = base_assignment(base)
    out = replace(base, acim=spec) if base.acim is not None else base
    for layer, s in zip(layers, assignment):
        if s.x_bits < layer.x_bits:
            out = lower_x_bits(out, layer.name, s.x_bits)
    for layer, s in zip(layers, assignment):
        if s.w_bits < layer.w_bits:
            out = lower_w_bits(out, layer.name, s.w_bits)
    for layer, s, b in zip(layers, assignment, base_settings):
        if s.sparsity > b.sparsity:
            out = prune_layer(out, layer.name, s.sparsity)
    for layer, s, b in zip(layers, assignment, base_settings):
        if s.family == "acim" and layer.macro == "dcim":
            out = to_acim(out, layer.name, spec, s.adc_bits)
        elif layer.macro == "acim" and s.adc_bits != b.adc_bits:
            out = lower_adc_bits(out, layer.name, s.adc_bits)
    return out


def evaluate_candidate(base: Bundle, spec: AcimSpec, assignment: Assignment,
                       images: np.ndarray, labels: np.ndarray) -> dict:
    """One candidate's accuracy (integer reference) and cost totals, or ``note`` saying
    why it cannot be built: the search's task."""
    from ..cost import network_cost
    from ..ref.network import integer_accuracy
    try:
        bundle = apply_assignment(base, assignment, spec)
    except CimstackError as exc:
        return {"note": str(exc)}
    t = network_cost(bundle).totals
    return {"accuracy": integer_accuracy(bundle, images, labels), "energy_pj": t["energy_pj"],
            "latency_s": t["latency_s"], "area_mm2": t["area_mm2"], "note": ""}


def held_out_accuracy(base: Bundle, spec: AcimSpec, assignment: Assignment,
                      images: np.ndarray, labels: np.ndarray) -> dict:
    """A front point's accuracy on the held-out images: the search's second task."""
    from ..ref.network import integer_accuracy
    try:
        bundle = apply_assignment(base, assignment, spec)
    except CimstackError as exc:
        return {"note": str(exc)}
    return {"accuracy": integer_accuracy(bundle, images, labels)}


# ----------------------------------------------------------------------- the front

def dominates(a: tuple, b: tuple, larger_better: tuple) -> bool:
    """``a`` is at least as good as ``b`` in every objective and better in one."""
    better = [x > y if up else x < y for x, y, up in zip(a, b, larger_better)]
    worse = [x < y if up else x > y for x, y, up in zip(a, b, larger_better)]
    return any(better) and not any(worse)


def pareto_front(values: list[tuple], larger_better: tuple) -> list[int]:
    """Indices of the ``values`` (objective tuples) no other one dominates, in order."""
    return [i for i, v in enumerate(values)
            if not any(dominates(w, v, larger_better) for w in values)]


def knee_index(values: list[tuple], larger_better: tuple) -> int:
    """Index into ``values`` (a front's objective tuples) of the knee: the point farthest
    from the line between the ends, the first two objectives scaled to [0, 1] and
    oriented larger-better; ties and a degenerate front give the best first objective."""
    pts = np.array([[v[0] if larger_better[0] else -v[0], v[1] if larger_better[1] else -v[1]]
                    for v in values], float)
    span = pts.max(axis=0) - pts.min(axis=0)
    pts = (pts - pts.min(axis=0)) / np.where(span > 0, span, 1.0)
    a, b = pts[int(np.argmax(pts[:, 0]))], pts[int(np.argmax(pts[:, 1]))]
    line = b - a
    norm = float(np.hypot(*line))
    dist = (np.abs(line[0] * (pts[:, 1] - a[1]) - line[1] * (pts[:, 0] - a[0])) / norm
            if norm > 0 else np.zeros(len(pts)))
    best = dist.max()
    ties = [i for i in range(len(pts)) if dist[i] >= best - 1e-12]
    return max(ties, key=lambda i: (pts[i, 0], -i))


# -------------------------------------------------------------------- evaluation

@dataclass
class Candidate:
    """One evaluated candidate: its place in the search's sequence, its settings, its
    figures (None when refused, ``note`` says why)."""

    index: int
    phase: str                # base, greedy or evolve
    settings: Assignment
    accuracy: float | None
    energy_pj: float | None
    latency_s: float | None
    area_mm2: float | None
    note: str = ""
    held_out_accuracy: float | None = None    # front points, when images are held out

    @property
    def ok(self) -> bool:
        return self.accuracy is not None

    def to_dict(self, names: list[str]) -> dict:
        return {"index": self.index, "phase": self.phase,
                "assignment": assignment_label(names, self.settings),
                "layers": [{"layer": n, **asdict(s)} for n, s in zip(names, self.settings)],
                **{m: getattr(self, m) for m in METRICS},
                "held_out_accuracy": self.held_out_accuracy, "note": self.note}


def assignment_label(names: list[str], settings: Assignment) -> str:
    """``conv1=dcim W8 X8; fc=acim W4 X4 A6``."""
    return "; ".join(f"{n}={s.label()}" for n, s in zip(names, settings))


def _fingerprint(bundle: Bundle, spec: AcimSpec, images: np.ndarray,
                 labels: np.ndarray) -> str:
    """The resume key: a content hash of the base bundle, the analog spec and the
    labelled images (the same on any machine)."""
    h = hashlib.sha256(bundle_digest(bundle).encode())
    h.update(json.dumps(spec.to_dict(), sort_keys=True).encode())
    for arr in (images, labels):
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}:{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


class _Evaluator:
    """Evaluates batches of candidates within the budget: from OUT/candidates when an
    earlier run with the same context wrote them, else as tasks on the engine (opened
    at the first task); every result is written at once."""

    def __init__(self, search: "_Search"):
        self.s = search
        self.seen: dict[Assignment, Candidate] = {}
        self.order: list[Candidate] = []
        self.computed = 0
        self.engine = None
        self._shared: dict[bool, tuple] = {}       # held -> (base, images, labels) shared

    @property
    def left(self) -> int:
        return self.s.budget - len(self.order)

    def _file(self, settings: Assignment, held: bool = False) -> Path:
        key = digest([asdict(x) for x in settings], 16)
        return self.s.out / "candidates" / f"{key}{'.held' if held else ''}.json"

    def _context(self, held: bool) -> str:
        return self.s.held_context if held else self.s.context

    def _stored(self, settings: Assignment, held: bool = False) -> dict | None:
        try:
            doc = json.loads(self._file(settings, held).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("context") != self._context(held) or \
                doc.get("settings") != [asdict(x) for x in settings]:
            return None
        return doc.get("metrics") if isinstance(doc.get("metrics"), dict) else None

    def held_out(self, cands: list[Candidate]) -> None:
        """Sets ``held_out_accuracy`` of ``cands`` (front points): from OUT/candidates
        or evaluated now on the held-out images; nothing when none are held out."""
        if not len(self.s.held_labels):
            return
        results = {c.settings: self._stored(c.settings, held=True) for c in cands}
        todo = [a for a, m in results.items() if m is None]
        if todo:
            results.update(self._run(todo, len(self.order), held=True))
        for c in cands:
            c.held_out_accuracy = results[c.settings].get("accuracy")

    def batch(self, wanted: list[Assignment], phase: str) -> list[Candidate]:
        """The candidates of ``wanted`` not evaluated yet, in order, cut to the budget."""
        new = list(dict.fromkeys(a for a in wanted if a not in self.seen))[:max(self.left, 0)]
        results = {a: self._stored(a) for a in new}
        todo = [a for a in new if results[a] is None]
        if todo:
            results.update(self._run(todo, len(self.order) + len(new) - len(todo)))
        made = []
        for a in new:
            m = results[a]
            cand = Candidate(len(self.order), phase, a, *(m.get(k) for k in METRICS),
                             note=m.get("note", ""))
            self.seen[a] = cand
            self.order.append(cand)
            made.append(cand)
        return made

    def _run(self, todo: list[Assignment], before: int, held: bool = False) -> dict:
        """Evaluates ``todo`` on the engine (the held-out accuracy with ``held``) and
        writes every result as it arrives."""
        s = self.s
        if self.engine is None:
            self.engine = open_engine(s.workers, s.cluster, s.connect_timeout)
        if held not in self._shared:
            images, labels = (s.held_images, s.held_labels) if held else (s.images, s.labels)
            self._shared[held] = tuple(self.engine.share(o) for o in (s.base, images, labels))
        base, images, labels = self._shared[held]
        task = held_out_accuracy if held else evaluate_candidate
        pending = {self.engine.submit(task, base, s.spec, a, images, labels,
                                      tag="search"): a for a in todo}
        results = {}
        while pending:
            done = self.engine.completed(list(pending), s.task_timeout)
            if not done:
                raise SweepError(f"no candidate finished within {s.task_timeout:g} s on the "
                                 f"{self.engine.name}; evaluated candidates are kept in "
                                 f"{s.out / 'candidates'} (a re-run resumes)")
            for fut in done:
                a = pending.pop(fut)
                try:
                    results[a] = fut.result()
                except BrokenProcessPool as exc:
                    raise SweepError(f"the {self.engine.name} lost a worker process ({exc}); "
                                     f"evaluated candidates are kept in "
                                     f"{s.out / 'candidates'} (a re-run resumes)") from None
                write_json_atomic(self._file(a, held), {"context": self._context(held),
                                                        "settings": [asdict(x) for x in a],
                                                        "metrics": results[a]})
                if held:
                    if s.progress:
                        s.progress(before, s.budget, "held-out images: "
                                   f"{len(results)}/{len(todo)} front points")
                    continue
                self.computed += 1
                if s.progress:
                    s.progress(before + len(results), s.budget,
                               assignment_label(s.names, a))
        return results


# ------------------------------------------------------------------------ strategy

@dataclass
class _Search:
    base: Bundle
    spec: AcimSpec
    images: np.ndarray
    labels: np.ndarray
    out: Path
    objectives: tuple
    budget: int
    seed: int
    workers: int | None
    cluster: str | None
    connect_timeout: float
    task_timeout: float
    progress: Progress | None
    min_accuracy: float = 0.0
    held_images: np.ndarray = None            # the held-out part (empty: none)
    held_labels: np.ndarray = None
    held_indices: np.ndarray = None           # their places in the images given
    context: str = ""                         # resume keys (_fingerprint)
    held_context: str = ""
    base_settings: Assignment = ()            # base_assignment(base)

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.base.macro_layers]

    @property
    def cost_metric(self) -> str:
        return OBJECTIVES[next(o for o in self.objectives if o != "accuracy")][0]


def _moves(search: _Search, a: Assignment, up: bool = False) -> list[Assignment]:
    """Every assignment one step from ``a`` (module docstring), downwards; with ``up``
    also the steps back towards the base."""
    adc_lo, _ = knob_bounds(AcimSpec, "adc_bits")
    out = []
    for i, (layer, s, b) in enumerate(zip(search.base.macro_layers, a, search.base_settings)):
        steps = []
        if s.family == "dcim":
            steps.append(replace(s, family="acim", adc_bits=search.spec.adc_bits,
                                 sparsity=b.sparsity))
        elif s.adc_bits > adc_lo:           # moved to acim, or acim in the base
            steps.append(replace(s, adc_bits=s.adc_bits - 1))
        if s.w_bits > 2:
            steps.append(replace(s, w_bits=s.w_bits - 1))
        if s.x_bits > 1:
            steps.append(replace(s, x_bits=s.x_bits - 1))
        sparser = round(s.sparsity + SPARSITY_STEP, SPARSITY_DIGITS)
        if s.family == "dcim" and sparser <= MAX_SPARSITY and any(blocks_pruned_per_tile(
                layer.k, search.base.dcim.rows_on, sparser, search.base.dcim.rows)):
            steps.append(replace(s, sparsity=sparser))
        if up:
            if s.family == "acim" and layer.macro == "dcim":
                steps.append(replace(s, family="dcim", adc_bits=None) if
                             s.adc_bits >= search.spec.adc_bits else
                             replace(s, adc_bits=s.adc_bits + 1))
            if layer.macro == "acim" and s.adc_bits < b.adc_bits:
                steps.append(replace(s, adc_bits=s.adc_bits + 1))
            if s.w_bits < layer.w_bits:
                steps.append(replace(s, w_bits=s.w_bits + 1))
            if s.x_bits < layer.x_bits:
                steps.append(replace(s, x_bits=s.x_bits + 1))
            if s.sparsity > b.sparsity:
                steps.append(replace(s, sparsity=max(b.sparsity, round(
                    s.sparsity - SPARSITY_STEP, SPARSITY_DIGITS))))
        out += [a[:i] + (step,) + a[i + 1:] for step in steps]
    return out


def _greedy(search: _Search, ev: _Evaluator, start: Candidate) -> None:
    """The greedy path from ``start`` (module docstring, 1)."""
    cost = search.cost_metric
    here = start
    while here.ok and ev.left > 0:
        evaluated = _neighbours(ev, _moves(search, here.settings))
        cheaper = [c for c in evaluated if c.ok and getattr(c, cost) < getattr(here, cost)
                   and c.accuracy >= search.min_accuracy]
        if not cheaper:
            return

        def rank(c: Candidate) -> tuple:
            loss = here.accuracy - c.accuracy
            saved = (getattr(here, cost) - getattr(c, cost)) / getattr(here, cost)
            return (0, -saved, c.index) if loss <= 0 else (1, loss / saved, c.index)
        here = min(cheaper, key=rank)


def _neighbours(ev: _Evaluator, moves: list[Assignment]) -> list[Candidate]:
    """The candidates of ``moves``: evaluated now (one batch) or earlier."""
    ev.batch(moves, "greedy")
    return [ev.seen[a] for a in moves if a in ev.seen]


def _evolve(search: _Search, ev: _Evaluator) -> None:
    """Seeded evolutionary refinement of the front with the budget left (module
    docstring, 2)."""
    rng = np.random.default_rng(search.seed)
    while ev.left > 0:
        parents = [ev.order[i] for i in _front(search, ev.order)]
        children: list[Assignment] = []
        for _ in range(GENERATION):
            for _ in range(DRAWS):
                child = parents[int(rng.integers(len(parents)))].settings
                for _ in range(int(rng.integers(1, 4))):
                    moves = _moves(search, child, up=True)
                    child = moves[int(rng.integers(len(moves)))] if moves else child
                if child not in ev.seen and child not in children:
                    children.append(child)
                    break
        if not children:
            return
        ev.batch(children, "evolve")


def _front(search: _Search, cands: list[Candidate]) -> list[int]:
    """Indices into ``cands`` of the front over the search's objectives (of the valid
    candidates with at least the minimum accuracy)."""
    ok = [i for i, c in enumerate(cands) if c.ok and c.accuracy >= search.min_accuracy]
    metrics = [OBJECTIVES[o] for o in search.objectives]
    values = [tuple(getattr(cands[i], m) for m, _ in metrics) for i in ok]
    return [ok[j] for j in pareto_front(values, tuple(up for _, up in metrics))]


# -------------------------------------------------------------------------- driver

@dataclass
class SearchResult:
    """What :func:`run_search` evaluated and where it wrote it."""

    out: Path
    names: list
    objectives: tuple
    candidates: list          # of Candidate, in evaluation order
    front: list               # of Candidate, cheapest first
    knee: Candidate
    computed: int             # evaluated in this run (the others came from OUT)
    engine: str | None
    images: int = 0           # that guided the search
    held_images: int = 0      # held out (front points' held_out_accuracy)


def search_base(path: str | Path, out: str | Path, force: bool = False,
                macro: str | None = None, sets: tuple | list = ()) -> Bundle:
    """The bundle a search starts from: the bundle folder ``path``, or the QONNX model
    ``path`` (``*.onnx``) imported with the layers on ``macro`` (default dcim) with the
    ``sets`` knobs (``KNOB=VALUE``), as ``cimstack import MODEL.onnx [--macro M] [--set
    ...]`` does, and written to ``OUT/base``, so that the front's candidates can be
    rebuilt from it; ConfigError when ``path`` is neither, or when a bundle folder comes
    with a macro or knobs (its layers have theirs)."""
    path = Path(path)
    if path.is_dir():
        if macro is not None or sets:
            raise ConfigError(f"{path}: --macro and --set choose how a QONNX model is "
                              "imported; a bundle folder's layers already have their macro "
                              "(drop them, or give MODEL.onnx)")
        return load_bundle(path)
    if path.suffix.lower() != ".onnx" or not path.is_file():
        raise ConfigError(f"{path}: neither a bundle folder nor a QONNX model file (.onnx); "
                          "give a folder written by `cimstack export` or `cimstack import`, "
                          "or MODEL.onnx")
    macro = macro or "dcim"
    check_macro(macro)
    bundle = import_qonnx(path, macro=macro, **({macro: macro_spec(sets, macro)} if sets else {}))
    save_bundle(bundle, claim_folder(out, force, kind="search") / "base")
    return bundle


def run_search(bundle: Bundle, images: np.ndarray, labels: np.ndarray, out: str | Path, *,
               objectives: str | tuple = ("accuracy", "energy"), budget: int = 200,
               seed: int = 0, sigma: float | None = None, min_accuracy: float = 0.0,
               holdout: float = SEARCH_HOLDOUT, source: str = "",
               workers: int | None = None, cluster: str | None = None,
               connect_timeout: float = 10.0, task_timeout: float = POINT_TIMEOUT,
               progress: Progress | None = None, force: bool = False) -> SearchResult:
    """Search per-layer assignments of ``bundle`` (module docstring) on ``images`` /
    ``labels``, evaluating at most ``budget`` candidates on a local pool of ``workers``
    processes (0: this process) or the Dask scheduler at ``cluster``; ``sigma`` the
    analog noise of every acim layer (None: the bundle's); candidates below
    ``min_accuracy`` are kept out of the front and end the greedy path; the share
    ``holdout`` of the images (:func:`holdout_split`) only measures the front's
    ``held_out_accuracy``. Writes into ``out``:
    ``candidates/`` (one file per candidate, the resume state), ``candidates.json``,
    ``front.csv``, ``front.json``, ``sensitivity.json`` (the base's one-step moves in
    the sensitivity study's format), the knee's bundle ``knee/`` and ``bundle`` itself as
    ``base/`` (``cimstack finetune`` rebuilds a front point from it without a
    checkpoint)."""
    objectives = check_objectives(objectives)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ConfigError(f"--budget {budget!r}: give the number of candidates to evaluate, "
                          "1 or more")
    if not 0.0 <= min_accuracy <= 1.0:
        raise ConfigError(f"--min-accuracy {min_accuracy!r}: give a fraction in [0, 1]")
    if cluster is not None:
        cluster_address(cluster)
    images, labels = np.asarray(images), np.asarray(labels)
    guide, held = holdout_split(labels, holdout)
    if not bundle.macro_layers:
        raise ConfigError(f"bundle {bundle.name} has no macro layer to assign")
    spec = bundle.acim or AcimSpec()
    spec = spec if sigma is None else replace(spec, sigma=sigma)
    out = claim_folder(out, force, kind="search")
    save_bundle(bundle, out / "base", force=True)     # the front's points rebuild from it
    search = _Search(bundle, spec, images[guide], labels[guide], out, objectives, budget,
                     seed, workers, cluster, connect_timeout, task_timeout, progress,
                     min_accuracy, images[held], labels[held], held)
    search.context = _fingerprint(bundle, spec, search.images, search.labels)
    search.held_context = _fingerprint(bundle, spec, search.held_images, search.held_labels)
    search.base_settings = base_assignment(bundle)
    ev = _Evaluator(search)
    t0 = time.perf_counter()
    try:
        start = ev.batch([search.base_settings], "base")[0]
        if not start.ok:
            raise ConfigError(f"bundle {bundle.name} cannot be evaluated: {start.note}")
        if start.accuracy < min_accuracy:
            raise ConfigError(f"--min-accuracy {min_accuracy:g}: the bundle itself reaches "
                              f"{start.accuracy:.4f}; give a lower one")
        _greedy(search, ev, start)
        _evolve(search, ev)
        result = _write(search, ev, source, t0)
    except BaseException:
        if ev.engine is not None:
            ev.engine.close(cancel=True)
        raise
    if ev.engine is not None:
        ev.engine.close()
    return result


def _write(search: _Search, ev: _Evaluator, source: str, t0: float) -> SearchResult:
    names, cands = search.names, ev.order
    cost = search.cost_metric
    front = sorted((cands[i] for i in _front(search, cands)),
                   key=lambda c: (getattr(c, cost), -c.accuracy, c.index))
    ev.held_out(front)
    metrics = [OBJECTIVES[o] for o in search.objectives]
    knee = front[knee_index([tuple(getattr(c, m) for m, _ in metrics) for c in front],
                            tuple(up for _, up in metrics))]
    settings = {"bundle": search.base.name, "objectives": list(search.objectives),
                "budget": search.budget, "seed": search.seed, "sigma": search.spec.sigma,
                "min_accuracy": search.min_accuracy, "base_digest": bundle_digest(search.base),
                "images": len(search.images), "source": source,
                "held_out": {"images": len(search.held_labels),
                             "indices": search.held_indices.tolist()},
                "evaluated": len(cands), "computed": ev.computed,
                "seconds": time.perf_counter() - t0}
    write_json_atomic(search.out / "candidates.json",
                      {**settings, "candidates": [c.to_dict(names) for c in cands]})
    rows = [{**c.to_dict(names), "knee": c is knee} for c in front]
    write_csv_atomic(search.out / "front.csv", [{k: r[k] for k in FRONT_COLUMNS} for r in rows],
                     FRONT_COLUMNS)
    write_json_atomic(search.out / "front.json",
                      {**settings, "front": rows, "knee": knee.to_dict(names)})
    write_json_atomic(search.out / "sensitivity.json",
                      _sensitivity(search, cands, source).to_dict())
    knee_bundle = apply_assignment(search.base, knee.settings, search.spec)
    knee_bundle = replace(knee_bundle, meta={**knee_bundle.meta, "search_knee": {
        "assignment": assignment_label(names, knee.settings), "index": knee.index,
        "layers": knee.to_dict(names)["layers"]}})
    save_bundle(knee_bundle, search.out / "knee")
    return SearchResult(search.out, names, search.objectives, cands, front, knee,
                        ev.computed, ev.engine.name if ev.engine else None,
                        len(search.labels), len(search.held_labels))


FRONT_COLUMNS = ("index", "accuracy", "held_out_accuracy", "energy_pj", "latency_s",
                 "area_mm2", "knee", "assignment")


def _sensitivity(search: _Search, cands: list[Candidate], source: str) -> Sensitivity:
    """The base's one-step moves in the sensitivity study's format (acim at the spec's
    ADC bits, w_bits and x_bits one less, sparsity one step higher, an acim layer's ADC
    one bit less), as far as the budget reached them."""
    base = cands[0]
    res = Sensitivity(search.base.name, len(search.images), source, search.spec.sigma,
                      search.spec.adc_bits, base.accuracy)
    by = {c.settings: c for c in cands}
    for a in _moves(search, base.settings):      # layer by layer
        if a not in by:
            continue
        i = next(i for i, (s, t) in enumerate(zip(a, base.settings)) if s != t)
        s, t, c = a[i], base.settings[i], by[a]
        change, value = (("acim", s.adc_bits) if s.family != t.family else
                         ("w_bits", s.w_bits) if s.w_bits != t.w_bits else
                         ("x_bits", s.x_bits) if s.x_bits != t.x_bits else
                         ("sparsity", s.sparsity) if s.sparsity != t.sparsity else
                         ("adc_bits", s.adc_bits) if s.adc_bits != t.adc_bits else
                         (None, None))
        if change is None:
            continue
        res.changes.append(LayerChange(search.names[i], change, value, c.accuracy,
                                       c.accuracy - base.accuracy if c.ok else None, c.note))
    return res
