"""Noise-aware fine-tuning of a design search's chosen assignment (``cimstack finetune``).

The search (:mod:`cimstack.study.search`) builds each candidate from the integer bundle
with integer transforms: no retraining. With the Brevitas checkpoint of the digits CNN
at hand (``cimstack train --checkpoint``), this module retrains the candidate instead:

- the **assignment** (one :class:`~cimstack.study.search.Setting` per macro layer) comes
  from a search's knee bundle (``OUT/knee``: its layers' families and bits) or a front
  point (``OUT/front.json#N``, ``N`` the point's ``index``; the noise is the search's
  ``sigma``);
- **before** is the search's candidate itself: the checkpoint's bundle with the
  assignment applied by :func:`~.search.apply_assignment`. For a knee
  bundle it must equal that bundle (else the search ran on another network), for a
  front point the checkpoint's bundle must have the search's ``base_digest``;
- the **model** computes in the integer codes the bundle passes between layers. The
  input quantizer takes the first layer's ``x_bits`` (:class:`~cimstack.quant.model.InputQuant`); a
  dcim layer is the checkpoint's Brevitas layer at the assigned ``w_bits``, its output
  codes ``clamp(round_half_up(y / s_o), 0, 2^b - 1)`` with ``b`` the next layer's
  ``x_bits`` and ``s_o`` fixed: the checkpoint's activation scale times ``2^(a_bits -
  b)`` (the search's rule for a lowered input); an acim layer is an
  :class:`~cimstack.quant.analog.AnalogQuantLayer` at the assigned bits (the macro's exact ADC: the
  fixed-point gain and offset, rounding, clipping, ``sigma`` of Gaussian noise), its
  codes clamped to ``2^b - 1`` as the identity requantizer does, its gain and offset
  initialised from the checkpoint as :func:`~cimstack.importer.analog_map.map_analog`
  maps a requantizer (the logits centred on ``h``, the largest one ``h - 1`` codes);
- **training**: Adam with a one-cycle schedule (:func:`~cimstack.quant.analog.fit`) on the digits'
  training split, noise drawn from ``torch.randn`` after ``torch.manual_seed(seed)`` on
  ``threads`` threads (default one; deterministic for a seed on one machine); weights
  that are zero in the checkpoint (pruned blocks) stay zero, and so do the blocks of a
  layer the assignment prunes further (its ``sparsity`` above the checkpoint's): the
  blocks that are zero in the candidate (:func:`pruning_masks`), so the tuned bundle
  keeps them;
- **after** is the exported bundle (dcim requantizers as :mod:`cimstack.quant.export`, acim ABN
  parameters as :mod:`cimstack.quant.analog`, the same noise keys as the candidate): a mixed bundle
  like any other, bit-exact on the reference and the emulated overlay.

Both accuracies are measured on the integer reference with the same images (by default
the digits test split, the images of ``cimstack run`` and of the search) under the same
analog noise (the search's ``AcimSpec``: same ``sigma``, seed and noise keys).

Refused with one line: an assignment whose layers are not the checkpoint's, an acim
layer with 1-bit weights, the per-input-bit ADC (``adc_per_input_bit``: the training
model converts the whole dot product once), and what the search's transforms refuse.

**Without a checkpoint** (:func:`finetune_bundle`; zoo networks, QONNX imports, any
bundle): the candidate is the assignment's bundle itself (a knee or candidate folder,
or a front point rebuilt from the search's ``OUT/base``: :func:`graph_candidate`), and
the model is :class:`~cimstack.quant.graph_model.GraphModel`: the bundle's graph in
torch on its integer codes, training offsets from its own integers (weights, dcim
requantizers, acim gains and offsets), with the same ADC and noise in the loop; the
after-bundle is :func:`~cimstack.quant.graph_model.export_graph` of it.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..bundle import (INT32, Bundle, InputSpec, MacroLayer, Requant, bundle_digest,
                      load_bundle)
from ..config import AcimSpec
from ..errors import ConfigError
from ..mapping.tiling import kept_weights
from ..quant.analog import AnalogQuantLayer, fit, round_ste
from ..quant.checkpoint import Checkpoint
from ..quant.data import load_digits_split
from ..quant.export import integer_weight, layer_requant
from ..quant.graph_model import GraphModel, export_graph
from ..quant.model import QuantConfig, QuantDigitsNet
from ..ref.network import integer_accuracy, quantize_input
from .search import (Assignment, Setting, apply_assignment, assignment_label,
                     base_assignment)

EPOCHS = 3
LR = 1e-3
GRAPH_LR = 1e-2              # the graph model's parameters are offsets in integer units
CALIBRATION_IMAGES = 256      # images that set a graph model's logit temperature


# ------------------------------------------------------------------ the assignment

@dataclass(frozen=True)
class AssignmentSource:
    """A chosen assignment with what the search ran it under: the layer names, the
    analog configuration (None: no acim layer and no spec), and the bundle or the base
    digest the before-bundle must match."""

    where: str
    names: tuple
    settings: Assignment
    spec: AcimSpec | None
    knee: Bundle | None = None
    base_digest: str | None = None
    exact: bool = False       # settings as searched (sparsity included), not measured


def read_assignment(ref: str | Path) -> AssignmentSource:
    """The assignment at ``ref``: a bundle folder (a search's ``OUT/knee``) or
    ``OUT/front.json#N`` (the front point with ``index`` N; without ``#N`` the knee)."""
    text = str(ref)
    path, _, point = text.partition("#")
    if Path(path).is_dir():
        if point:
            raise ConfigError(f"--assignment {text}: #N selects a point of a front.json; "
                              "give OUT/front.json#N or the bundle folder alone")
        knee = load_bundle(path)
        names = tuple(layer.name for layer in knee.macro_layers)
        recorded = (knee.meta.get("search_knee") or {}).get("layers")
        settings = (_settings(recorded, text, "its bundle.json") if recorded
                    else base_assignment(knee))
        return AssignmentSource(text, names, settings, knee.acim, knee=knee,
                                exact=bool(recorded))
    try:
        doc = json.loads(Path(path).read_text())
        front = {str(row["index"]): row for row in doc["front"]}
        sigma = float(doc["sigma"])
        chosen = front.get(point, {}) if point else doc["knee"]
        layers = chosen.get("layers", [])
        names = tuple(str(d["layer"]) for d in layers)
        settings = _settings(layers, text, path)
    except OSError:
        raise ConfigError(f"--assignment {text}: no such file or folder; give a search's "
                          "OUT/knee or OUT/front.json#N") from None
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"--assignment {text}: {path} is not a search's front.json "
                          "(cimstack search writes OUT/front.json)") from None
    if not layers:
        raise ConfigError(f"--assignment {text}: {path} has no front point {point}; its "
                          f"points are {', '.join(front)}")
    return AssignmentSource(text, names, settings, AcimSpec(sigma=sigma),
                            base_digest=doc.get("base_digest"), exact=True)


def _settings(layers: list, text: str, where) -> Assignment:
    """The settings of a search's ``layers`` records (front.json, a knee's meta)."""
    try:
        settings = tuple(Setting(d["family"], int(d["w_bits"]), int(d["x_bits"]),
                                 None if d["adc_bits"] is None else int(d["adc_bits"]),
                                 float(d.get("sparsity", 0.0)))
                         for d in layers)
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"--assignment {text}: {where} does not hold a search's "
                          "per-layer settings") from None
    if any(s.family not in ("dcim", "acim") for s in settings):
        raise ConfigError(f"--assignment {text}: {where} names a family other than dcim "
                          "and acim")
    return settings


def candidate_bundle(checkpoint: Checkpoint, source: AssignmentSource) -> Bundle:
    """The search's candidate for ``source`` built from the checkpoint's bundle; one line
    (ConfigError) when it cannot be the one the search evaluated."""
    base = checkpoint.export(dcim=source.knee.dcim if source.knee is not None else None)
    names = tuple(layer.name for layer in base.macro_layers)
    if names != source.names:
        raise ConfigError(f"--assignment {source.where} assigns the layers "
                          f"{', '.join(source.names)}; the checkpoint's network has "
                          f"{', '.join(names)}")
    mismatch = (f"--assignment {source.where} was not searched from this checkpoint's "
                "bundle; search the bundle `cimstack export CHECKPOINT` writes, or give "
                "the checkpoint that bundle came from")
    if source.base_digest is not None and source.base_digest != bundle_digest(base):
        raise ConfigError(mismatch)
    before = apply_assignment(base, searched_settings(source, base),
                              source.spec or AcimSpec())
    if source.knee is not None and \
            bundle_digest(replace(before, meta=source.knee.meta)) != bundle_digest(source.knee):
        if not source.exact and any(k.sparsity > s.sparsity for k, s in zip(
                source.settings, base_assignment(before))):
            raise ConfigError(f"--assignment {source.where}: this knee prunes blocks beyond "
                              "the checkpoint's and was written before knees recorded "
                              "their settings; give the search's OUT/front.json#N")
        raise ConfigError(mismatch)
    return before


def searched_settings(source: AssignmentSource, base: Bundle) -> Assignment:
    """The settings the search applied to ``base``: as recorded, or for a knee written
    before knees recorded their settings, its families and bits with the base's block
    sparsity (the knee's measured one also counts lowered weights rounded to zero; the
    knee's digest confirms the guess unless the search pruned further)."""
    if source.exact:
        return source.settings
    return tuple(replace(s, sparsity=b.sparsity)
                 for s, b in zip(source.settings, base_assignment(base)))


def pruning_masks(before: Bundle, base: Bundle, settings: Assignment) -> list:
    """Per macro layer, the weights (bool, the layer's weight shape) the fine-tuning
    keeps zero beyond the checkpoint's own zeros: for a layer the assignment prunes
    further than ``base`` (its ``sparsity`` higher), every weight of a block that is zero
    in the candidate ``before``; None for the other layers."""
    rows_on = before.dcim.rows_on
    masks = []
    for layer, s, b in zip(before.macro_layers, settings, base_assignment(base)):
        if s.sparsity <= b.sparsity:
            masks.append(None)
            continue
        masks.append(~kept_weights(layer, rows_on))
    return masks


# ----------------------------------------------------------------------- the model

class MixedDigitsNet(nn.Module):
    """The digits CNN under an assignment, in the codes the bundle passes between
    layers (module docstring)."""

    def __init__(self, checkpoint: Checkpoint, settings: Assignment, spec: AcimSpec,
                 keys: list[int | None], pruned: list | None = None):
        super().__init__()
        src = checkpoint.model
        cfg = src.cfg
        x_bits = [s.x_bits for s in settings]
        q = QuantDigitsNet(QuantConfig.make([s.w_bits for s in settings], x_bits[1:],
                                            x_bits[0]),
                           src.conv1.out_channels, src.conv2.out_channels, src.fc.out_features)
        with torch.no_grad():
            for dst, old in zip(q.macro_layers, src.macro_layers):
                dst.weight.copy_(old.weight)
                dst.bias.copy_(old.bias)
        self.inp = q.inp
        self.settings = tuple(settings)
        self.spec = spec
        # the fixed scale and top code of each hidden layer's output codes
        self.out_scales = [float(a.act_quant.scale().detach()) * 2.0 ** (cfg.a_bits[i] - b)
                           for i, (a, b) in enumerate(zip(src.acts, x_bits[1:]))]
        self.out_bits = x_bits[1:]
        layers = []
        for i, (s, layer) in enumerate(zip(settings, q.macro_layers)):
            if s.family == "acim":
                if s.w_bits < 2:
                    raise ConfigError(f"{s.label()} (macro layer {i + 1}): the analog "
                                      "training model takes 2..8-bit weights, not 1")
                layer = AnalogQuantLayer(layer, replace(spec, adc_bits=s.adc_bits), s.x_bits,
                                         s.w_bits, keys[i])
            layers.append(layer)
        self.layers = nn.ModuleList(layers)
        self.pool = nn.MaxPool2d(2, 2)
        self.log_temp = nn.Parameter(torch.tensor(float(np.log(8.0))))   # loss only
        self._init_analog()
        # weights kept at zero: the checkpoint's, and the blocks pruned further
        # (``pruned``: pruning_masks)
        self._masks = []
        for layer, extra in zip(self.layers, pruned or [None] * len(self.layers)):
            w = (layer.inner if isinstance(layer, AnalogQuantLayer) else layer).weight
            mask = w.detach() != 0
            if extra is not None:
                mask &= ~torch.from_numpy(np.asarray(extra, bool))
                with torch.no_grad():
                    w.mul_(mask)
            w.register_hook(lambda g, m=mask: g * m)
            self._masks.append(mask)

    def in_scales(self) -> list[float]:
        """The scale of each macro layer's input codes."""
        return [float(self.inp.scale), *self.out_scales]

    @torch.no_grad()
    def _init_analog(self) -> None:
        """Gains and offsets of the acim layers from the checkpoint's weights and biases
        (module docstring)."""
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, AnalogQuantLayer):
                continue
            h = 2.0 ** (layer.spec.adc_bits - 1)
            w, s_w = layer.int_weight()
            m = self.in_scales()[i] * s_w.double()
            c = layer.inner.bias.detach().double()
            if i < len(self.out_scales):
                s_o, shift = self.out_scales[i], h
            else:                       # logits: the largest one takes h - 1 codes
                peak = (w.abs().reshape(len(m), -1).sum(1).double()
                        * ((1 << layer.x_bits) - 1) * m + c.abs()).max()
                s_o, shift = float(peak) / (h - 1) if peak > 0 and h > 1 else 1.0, 0.0
            gain = m * layer.fs() / (s_o * h)
            layer.log2_gain.copy_(torch.log2(torch.clamp(gain, min=1e-6)).float())
            layer.offset_h.copy_(((c / s_o - shift) / h).float())

    def set_noise(self, sigma: float) -> None:
        for layer in self.layers:
            if isinstance(layer, AnalogQuantLayer):
                layer.noise_sigma = float(sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        codes = self.inp.quantize_int(x)
        scales = self.in_scales()
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if isinstance(layer, AnalogQuantLayer):
                y = layer(codes)
                if i == last:
                    h = 2.0 ** (layer.spec.adc_bits - 1)
                    return (y - h) / h * torch.exp(self.log_temp)
            else:
                y = layer(codes * scales[i])
                if i == last:
                    return y
                y = round_ste(y / self.out_scales[i])
            codes = torch.clamp(y, 0, 2 ** self.out_bits[i] - 1)
            codes = self.pool(codes)
            if i == 1:
                codes = torch.flatten(codes, 1)
        raise AssertionError("unreachable: the last layer returns")


@torch.no_grad()
def export_mixed(model: MixedDigitsNet, before: Bundle, meta: dict) -> Bundle:
    """The tuned bundle: ``before``'s graph with the model's integer weights, dcim
    requantizers and acim ABN parameters (module docstring)."""
    model.eval()
    scales = model.in_scales()
    last = before.macro_layers[-1]
    layers, output_scale = [], None
    i = -1
    for node in before.layers:
        if not isinstance(node, MacroLayer):
            layers.append(node)
            continue
        i += 1
        module, s = model.layers[i], model.settings[i]
        if isinstance(module, AnalogQuantLayer):
            w, params = module.export_params()
            n, h = w.shape[0], 1 << (module.spec.adc_bits - 1)
            rq = (Requant(np.ones(n, np.int64), np.full(n, -h, np.int64), 0, *INT32)
                  if node is last else
                  Requant(np.ones(n, np.int64), np.zeros(n, np.int64), 0, 0,
                          (1 << model.out_bits[i]) - 1))
            layers.append(replace(node, weight=w, w_bits=s.w_bits, x_bits=s.x_bits,
                                  requant=rq, macro="acim", analog=params,
                                  adc_bits=node.adc_bits))
        else:
            w, s_w = integer_weight(module, s.w_bits)
            bias = module.bias.detach().double().numpy()
            if node is last:
                rq, output_scale = layer_requant(w, s.x_bits, scales[i], s_w, bias)
            else:
                rq, _ = layer_requant(w, s.x_bits, scales[i], s_w, bias, model.out_scales[i],
                                      model.out_bits[i])
            layers.append(replace(node, weight=w, w_bits=s.w_bits, x_bits=s.x_bits,
                                  requant=rq))
    tuned = replace(before, name=f"{before.name}-finetuned", layers=layers,
                    input=InputSpec(before.input.shape, model.settings[0].x_bits,
                                    float(model.inp.scale)),
                    meta={**before.meta, "output_scale": output_scale, "finetune": meta})
    tuned.validate()
    return tuned


# ------------------------------------------------------------------------- driver

@dataclass
class FinetuneResult:
    """The candidate before and after fine-tuning, with their reference accuracies on
    the same images under the same noise."""

    before: Bundle
    after: Bundle
    accuracy_before: float
    accuracy_after: float
    images: int
    assignment: str
    seconds: float
    losses: list = field(default_factory=list)


@contextmanager
def _torch_run(threads: int, seed: int):
    """Torch on ``threads`` threads, seeded with ``seed``; the thread count restored."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        yield
    finally:
        torch.set_num_threads(old)


def _check_trainable(before: Bundle) -> None:
    spec = before.acim or AcimSpec()
    if spec.adc_per_input_bit and any(layer.macro == "acim" for layer in before.macro_layers):
        raise ConfigError("the analog training model converts each dot product once; the "
                          "per-input-bit ADC (adc_per_input_bit) is not trained: search "
                          "with adc_per_input_bit off")


def _result(before: Bundle, export: Callable[[dict], Bundle], label: str, images, labels,
            hyper: dict, t0: float, losses: list) -> FinetuneResult:
    """Both accuracies on ``images`` and the tuned bundle ``export(meta)``, its meta
    ``finetune`` recording them with the ``hyper``-parameters."""
    acc_before = integer_accuracy(before, images, labels)
    meta = {"assignment": label, **hyper, "sigma": (before.acim or AcimSpec()).sigma,
            "accuracy_before": acc_before}
    after = export(meta)
    acc_after = integer_accuracy(after, images, labels)
    after.meta["finetune"]["accuracy_after"] = acc_after
    return FinetuneResult(before, after, acc_before, acc_after, len(images), label,
                          time.perf_counter() - t0, losses)


def finetune(checkpoint: Checkpoint, source: AssignmentSource, *, epochs: int = EPOCHS,
             lr: float = LR, seed: int = 0, images: np.ndarray | None = None,
             labels: np.ndarray | None = None, train_images: int | None = None,
             threads: int = 1) -> FinetuneResult:
    """Fine-tune ``checkpoint``'s network under the assignment of ``source`` (module
    docstring); ``images`` / ``labels`` the evaluation images (default: the digits test
    split); ``train_images`` the first that many training images only (None: all). One
    torch thread by default, as :func:`finetune_bundle` (the same bundle on 1 and 2
    threads, measured; 2 threads were up to 3x slower on busy cores)."""
    t0 = time.perf_counter()
    before = candidate_bundle(checkpoint, source)
    base = checkpoint.export(dcim=before.dcim)
    pruned = pruning_masks(before, base, searched_settings(source, base))
    spec = before.acim or AcimSpec()
    _check_trainable(before)
    data = load_digits_split()
    if images is None:
        images, labels = data.x_test, data.y_test
    keys = [None if layer.analog is None else layer.analog.layer      # the noise keys
            for layer in before.macro_layers]
    with _torch_run(threads, seed):
        model = MixedDigitsNet(checkpoint, source.settings, spec, keys, pruned)
        model.set_noise(spec.sigma_q / 256)
        losses = fit(model, data.x_train[:train_images], data.y_train[:train_images], epochs,
                     lr, seed)
        model.set_noise(0.0)
    label = assignment_label(list(source.names), source.settings)
    return _result(before, lambda meta: export_mixed(model, before, meta), label, images,
                   labels, {"epochs": epochs, "lr": lr, "seed": seed}, t0, losses)


# ------------------------------------------------------ without a Brevitas source

def graph_candidate(source: AssignmentSource) -> Bundle:
    """The candidate bundle of ``source`` without a checkpoint: a bundle folder itself, or
    for ``OUT/front.json#N`` the search's base (``OUT/base``, which every search writes)
    with the point's settings applied; one line (ConfigError) when there is no base or
    it is not the bundle the search ran on."""
    if source.knee is not None:
        return source.knee
    base_dir = Path(source.where.partition("#")[0]).parent / "base"
    if not (base_dir / "bundle.json").is_file():
        raise ConfigError(f"--assignment {source.where}: no {base_dir} to rebuild the point "
                          "from (searches write OUT/base); give the search's knee or a "
                          "candidate bundle folder, or the Brevitas checkpoint")
    base = load_bundle(base_dir)
    if source.base_digest is not None and source.base_digest != bundle_digest(base):
        raise ConfigError(f"--assignment {source.where}: {base_dir} is not the bundle the "
                          "search ran on (its digest differs); search again")
    return apply_assignment(base, source.settings, source.spec or AcimSpec())


def finetune_bundle(before: Bundle, x_train: np.ndarray, y_train: np.ndarray, *,
                    epochs: int = EPOCHS, lr: float = GRAPH_LR, seed: int = 0,
                    images: np.ndarray | None = None, labels: np.ndarray | None = None,
                    train_images: int | None = None, threads: int = 1) -> FinetuneResult:
    """Fine-tune the bundle ``before`` itself (no Brevitas source: any graph, zoo and
    imported networks included) as :class:`~cimstack.quant.graph_model.GraphModel`, on
    the labelled float images ``x_train`` / ``y_train`` (the first ``train_images``),
    noise-aware: the acim layers' ADC and noise in the loop; ``images`` / ``labels`` the
    evaluation images (default: ``x_train`` / ``y_train``). One torch thread by default:
    the small batches' operators are too short to share (measured on 2 busy cores: the
    user CNN of the import tests 0.9 s on one thread, 24 s on two; the same result)."""
    t0 = time.perf_counter()
    _check_trainable(before)
    if images is None:
        images, labels = x_train, y_train
    codes = quantize_input(before, x_train[:train_images]).astype(np.float64)
    targets = np.asarray(y_train[:train_images], np.int64)
    with _torch_run(threads, seed):
        model = GraphModel(before)
        model.calibrate(torch.from_numpy(codes[:CALIBRATION_IMAGES]))
        model.set_noise(True)
        losses = fit(model, codes, targets, epochs, lr, seed)
        model.set_noise(False)
    label = assignment_label([layer.name for layer in before.macro_layers],
                             base_assignment(before))
    return _result(before, lambda meta: export_graph(
        model, f"{before.name}-finetuned", {"finetune": meta}), label, images, labels,
        {"epochs": epochs, "lr": lr, "seed": seed, "model": "graph"}, t0, losses)
