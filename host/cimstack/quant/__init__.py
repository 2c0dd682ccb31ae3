"""Brevitas training and export to the integer bundle (the only torch user).

Import the submodules directly; this package file stays light so that
``cimstack.quant.data`` can be used without torch:

- :mod:`.data` – UCI digits, fixed stratified split (numpy, no torch)
- :mod:`.model` – float CNN (BN) and the Brevitas QAT CNN built from folded weights
- :mod:`.fold` – BN folding
- :mod:`.prune` – channel-balanced CIM block pruning
- :mod:`.train` – :func:`~.train.train_digits` pipeline and :class:`~.train.TrainResult`
- :mod:`.export` – :func:`~.export.export_bundle` (Brevitas -> integer Bundle)
"""

__all__ = ["train_digits", "export_bundle", "load_digits_split"]


def __getattr__(name):  # lazy: importing cimstack.quant does not import torch
    if name == "train_digits":
        from .train import train_digits
        return train_digits
    if name == "export_bundle":
        from .export import export_bundle
        return export_bundle
    if name == "load_digits_split":
        from .data import load_digits_split
        return load_digits_split
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
