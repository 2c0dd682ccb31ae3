"""The model zoo: Brevitas builds of the seed papers' networks, written as QONNX files.

- :mod:`.zoo` – the registry (:data:`~.zoo.MODELS`), the builders (VGG16, ResNet18,
  an IMAGINE-style CNN, FINN's CNV), seeded random weights with calibrated batch-norm
  and activation statistics, digits training at 3x32x32, QONNX export (imports torch);
- :mod:`.cli` – ``cimstack models list`` / ``cimstack models export`` (torch only
  when a command runs).
- :mod:`.flexspim` – FlexSpIM's 6-conv + 3-FC spiking CNN on DVS128-Gesture-shaped
  input as an integer ``SnnNet`` with seeded random weights (NumPy only, no torch).

This package file imports nothing, so ``import cimstack.models`` stays torch-free.
"""
