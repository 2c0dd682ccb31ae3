"""The digits pipeline: float training (BN) -> BN fold -> QAT -> optional block
pruning + fine-tuning -> evaluation -> export to an integer :class:`~cimstack.bundle.Bundle`.

Deterministic for a given seed (seeded torch generators, deterministic algorithms,
fixed data split, the fixed ``threads`` count) on a given machine and torch version;
nothing else random (NumPy, python ``random``, a DataLoader) is used.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from .data import DigitsSplit, load_digits_split
from ..errors import ConfigError
from .model import FloatDigitsNet, QuantConfig, QuantDigitsNet, predict
from .prune import BlockPruner, LayerSparsity, measure_blocks

# default schedule (epochs); the default W8A8 dense run takes ~6-12 s on 2 cores
FLOAT_EPOCHS = 20
QAT_EPOCHS = 12          # 20 when any bit width is below 4
PRUNE_EPOCHS = 8
QAT_LR = 2e-3            # 1e-2 when any bit width is below 4 (measured better)


@dataclass(frozen=True)
class ProgressEvent:
    """One finished epoch. ``done``/``total`` count epochs over all stages."""

    stage: str          # "float" | "qat" | "prune"
    epoch: int          # 1-based within the stage
    epochs: int         # epochs of the stage
    done: int
    total: int
    loss: float
    seconds: float      # wall time since the start of the pipeline


ProgressFn = Callable[[ProgressEvent], None]


@dataclass
class TrainResult:
    """Everything the pipeline produced. ``export()`` gives the integer bundle."""

    cfg: QuantConfig
    seed: int
    rows_on: int
    block_sparsity_target: float
    float_model: FloatDigitsNet
    quant_model: QuantDigitsNet
    data: DigitsSplit
    float_acc: float
    quant_acc: float
    float_pred: np.ndarray
    quant_pred: np.ndarray
    sparsity: dict[str, LayerSparsity]
    timings: dict[str, float] = field(default_factory=dict)
    history: list = field(default_factory=list)

    @property
    def block_sparsity(self) -> float:
        """Achieved block sparsity over all blocks of all macro layers."""
        total = sum(r.blocks for r in self.sparsity.values())
        return sum(r.pruned for r in self.sparsity.values()) / total if total else 0.0

    def meta(self) -> dict[str, Any]:
        return {
            "dataset": "sklearn-digits", "split": {"test_fraction": 0.2, "seed": 0},
            "seed": self.seed, "bits": self.cfg.to_dict(), "rows_on": self.rows_on,
            "block_sparsity_target": self.block_sparsity_target,
            "block_sparsity": self.block_sparsity,
            "layer_block_sparsity": {k: v.sparsity for k, v in self.sparsity.items()},
            "float_acc": self.float_acc, "brevitas_acc": self.quant_acc,
            "train_seconds": self.timings.get("total"),
        }

    def export(self, name: str | None = None, dcim=None):
        """The integer :class:`~cimstack.bundle.Bundle` of the quantized model."""
        from .export import export_bundle
        return export_bundle(self.quant_model, name=name or self.default_name(),
                             dcim=dcim, rows_on=self.rows_on, meta=self.meta())

    def save(self, path, name: str | None = None, dcim=None, force: bool = False):
        """Export and write the bundle folder; returns its path."""
        from ..bundle import save_bundle
        return save_bundle(self.export(name, dcim), path, force)

    def default_name(self) -> str:
        w = "-".join(map(str, sorted(set(self.cfg.w_bits))))
        a = "-".join(map(str, sorted(set(self.cfg.a_bits))))
        s = f"-s{round(100 * self.block_sparsity_target)}" if self.block_sparsity_target else ""
        return f"digits-w{w}a{a}{s}"


@contextlib.contextmanager
def _torch_env(threads: int):
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


@torch.no_grad()
def _rich_progress():
    """A ProgressFn drawing a rich progress bar; returns (fn, close)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    bar = Progress(TextColumn("{task.description}"), BarColumn(),
                   TextColumn("{task.completed}/{task.total} epochs"), TimeElapsedColumn())
    task = None

    def fn(ev: ProgressEvent) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task("training", total=ev.total)
        bar.update(task, completed=ev.done,
                   description=f"{ev.stage} {ev.epoch}/{ev.epochs} loss {ev.loss:.3f}")

    return fn, bar.stop


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float,
         batch: int, gen: torch.Generator, stage: str, counter: list, total: int,
         t0: float, progress: ProgressFn | None, history: list,
         after_step: Callable[[], None] | None = None) -> None:
    if epochs <= 0:
        return
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * (-(-len(x) // batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.2)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for ep in range(1, epochs + 1):
        perm = torch.randperm(len(x), generator=gen)
        total_loss = 0.0
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            sched.step()
            if after_step is not None:
                after_step()
            total_loss += float(loss.detach()) * len(idx)
        counter[0] += 1
        ev = ProgressEvent(stage, ep, epochs, counter[0], total, total_loss / len(x),
                           time.perf_counter() - t0)
        history.append(ev)
        if progress is not None:
            progress(ev)
    model.eval()


def train_digits(w_bits: int | Sequence[int] = 8, a_bits: int | Sequence[int] = 8,
                 block_sparsity: float = 0.0, rows_on: int = 16, *,
                 in_bits: int | None = None, epochs: int | None = None,
                 qat_epochs: int | None = None, prune_epochs: int | None = None,
                 qat_lr: float | None = None, seed: int = 0, batch: int = 32, threads: int = 2,
                 progress: ProgressFn | bool | str | None = None) -> TrainResult:
    """Train the digits CNN and its quantized (optionally block-pruned) version.

    ``w_bits`` per macro layer (one value or 3), ``a_bits`` per hidden activation (one
    value or 2), ``in_bits`` the input image bits (default 8). ``epochs`` is the float
    training length (default :data:`FLOAT_EPOCHS`); ``qat_epochs`` / ``prune_epochs``
    the fine-tuning lengths (defaults scale with ``epochs``; longer and with a larger
    ``qat_lr`` when a bit width is below 4). ``progress``: a callable
    receiving :class:`ProgressEvent` per epoch, or ``True``/``"rich"`` for a rich bar.
    """
    cfg = QuantConfig.make(w_bits, a_bits, in_bits)
    if not 0.0 <= block_sparsity < 1.0:
        raise ConfigError(f"block_sparsity {block_sparsity} is out of range: allowed [0, 1)")
    low_bits = min(*cfg.w_bits, *cfg.a_bits) < 4
    f_ep = FLOAT_EPOCHS if epochs is None else int(epochs)
    scale = f_ep / FLOAT_EPOCHS
    q_default = 20 if low_bits else QAT_EPOCHS
    q_ep = max(1, round(q_default * scale)) if qat_epochs is None else int(qat_epochs)
    if qat_lr is None:
        qat_lr = 1e-2 if low_bits else QAT_LR
    p_ep = (max(1, round(PRUNE_EPOCHS * scale)) if prune_epochs is None else int(prune_epochs))
    if block_sparsity == 0.0:
        p_ep = 0
    close = None
    if progress is True or progress == "rich":
        progress, close = _rich_progress()
    elif progress is False:
        progress = None

    data = load_digits_split()
    timings: dict[str, float] = {}
    history: list = []
    t0 = time.perf_counter()
    try:
        with _torch_env(threads):
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            x_tr, y_tr = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
            total = f_ep + q_ep + p_ep
            counter = [0]
            common = dict(batch=batch, gen=gen, counter=counter, total=total, t0=t0,
                          progress=progress, history=history)

            fnet = FloatDigitsNet()
            _fit(fnet, x_tr, y_tr, epochs=f_ep, lr=1e-2, stage="float", **common)
            timings["float"] = time.perf_counter() - t0

            qnet = QuantDigitsNet.from_float(fnet, cfg)
            t1 = time.perf_counter()
            _fit(qnet, x_tr, y_tr, epochs=q_ep, lr=qat_lr, stage="qat", **common)
            timings["qat"] = time.perf_counter() - t1

            layers = {"conv1": qnet.conv1, "conv2": qnet.conv2, "fc": qnet.fc}
            if block_sparsity > 0.0:
                t1 = time.perf_counter()
                pruner = BlockPruner(layers, rows_on, block_sparsity)
                _fit(qnet, x_tr, y_tr, epochs=p_ep, lr=qat_lr / 2, stage="prune",
                     after_step=pruner.apply, **common)
                pruner.apply()
                timings["prune"] = time.perf_counter() - t1
            sparsity = {n: measure_blocks(n, m.weight, rows_on) for n, m in layers.items()}

            float_pred = predict(fnet, data.x_test)
            quant_pred = predict(qnet, data.x_test)
    finally:
        if close is not None:
            close()
    timings["total"] = time.perf_counter() - t0
    return TrainResult(
        cfg=cfg, seed=seed, rows_on=rows_on, block_sparsity_target=float(block_sparsity),
        float_model=fnet, quant_model=qnet, data=data,
        float_acc=float(np.mean(float_pred == data.y_test)),
        quant_acc=float(np.mean(quant_pred == data.y_test)),
        float_pred=float_pred, quant_pred=quant_pred, sparsity=sparsity,
        timings=timings, history=history)
