"""FlexSpIM's network at scale: a 6-conv + 3-FC spiking CNN on DVS128-Gesture-shaped
input, with seeded random weights and thresholds (no training, no data download).

Layers (3x3 convolutions, zero padding 1, stride 1; OR pooling 2x2 after every
convolution; 8-bit weights, 16-bit membranes, integrate-and-fire, subtract reset):

    2x128x128 -> conv 16 -> pool -> conv 32 -> pool -> conv 32 -> pool -> conv 64 -> pool
    -> conv 64 -> pool -> conv 128 -> pool (128x2x2) -> fc 256 -> fc 128 -> fc 11

The paper's exact layer sizes are not public (docs/macros.md); these are ours, in its
shape (six convolutions, three fully connected layers, the 11 gesture classes).

``downsample`` (1, 2, 4, 8, 16 or 32): the input is ``2 x 128/d x 128/d`` (events binned
d x d, the OR pooling the kernel's input decoder does) and the first ``log2 d`` pooling
layers are dropped, so every layer keeps its weight shape and the FC layers see
128x2x2; only the convolutions' membranes shrink (by d^2).

Weights: int8 drawn from N(0, 24^2), rounded and clipped. Thresholds, layer by layer on a seeded calibration run (one
sample, ``CALIBRATION_STEPS`` timesteps of random events at ``design_density``): the
``1 - target_rate`` quantile of the layer's input currents per neuron and timestep, so
about ``target_rate`` of the neurons fire from the first timestep on (more later, as
membranes accumulate); the layer's spikes on that run feed the next layer's calibration.
A run measures the actual rates (``run_snn`` stats): with the defaults (target 5%, 95%
input sparsity, 16 timesteps) the hidden layers fire at 9-22% per neuron and timestep.
"""

from __future__ import annotations

import numpy as np

from ..config import SnnSpec
from ..errors import ConfigError
from ..ref.snn import SnnLayer, SnnNet, neuron_update, pool_or, synaptic_input

INPUT = (2, 128, 128)          # DVS128 Gesture: polarity x 128 x 128
CONV_CHANNELS = (16, 32, 32, 64, 64, 128)
FC_SIZES = (256, 128, 11)
DOWNSAMPLES = (1, 2, 4, 8, 16, 32)
SIGMA = 24.0                   # weight spread (int8 units)
CALIBRATION_STEPS = 8


def _weights(rng, shape) -> np.ndarray:
    w = rng.normal(0.0, SIGMA, shape)
    return np.clip(np.rint(w), -128, 127).astype(np.int32)


def _calibrate(layer: SnnLayer, x: np.ndarray, target_rate: float) -> np.ndarray:
    """Set ``layer.theta`` from its input spikes ``x`` ``[T, *in_shape]`` (one sample);
    return its output spikes ``[T, *out_shape]``."""
    cur = synaptic_input(layer, x).reshape(len(x), -1)
    layer.theta = int(np.clip(np.quantile(cur, 1 - target_rate), 1, (1 << 15) - 1))
    v = np.zeros(layer.n_neurons, np.int32)
    out = np.empty(cur.shape, bool)
    for t in range(len(x)):
        v, out[t] = neuron_update(v, cur[t], layer)
    return out.reshape(len(x), *layer.out_shape)


def flexspim_net(downsample: int = 1, seed: int = 0, design_density: float = 0.05,
                 target_rate: float = 0.05, n_steps: int = 16) -> SnnNet:
    """The 6-conv + 3-FC network (module docstring), validated."""
    if downsample not in DOWNSAMPLES:
        raise ConfigError(f"downsample = {downsample!r}: use one of {DOWNSAMPLES} "
                          "(128 divided by it, the pooling layers dropped)")
    for name, v in (("design_density", design_density), ("target_rate", target_rate)):
        if not 0 < v < 1:
            raise ConfigError(f"{name} = {v!r} must be in (0, 1) (events per address and "
                              "timestep)")
    rng = np.random.default_rng(seed)
    side = INPUT[1] // downsample
    dropped = int(np.log2(downsample))
    shape, layers = (INPUT[0], side, side), []
    x = rng.random((CALIBRATION_STEPS, *shape)) < design_density
    for i, n in enumerate(CONV_CHANNELS, 1):
        c, h, w = shape
        layers.append(SnnLayer(f"conv{i}", "conv", shape, (n, h, w),
                               _weights(rng, (n, c, 3, 3)), padding=1))
        x, shape = _calibrate(layers[-1], x, target_rate), (n, h, w)
        if i > dropped:
            layers.append(SnnLayer(f"pool{i}", "pool", shape, (n, h // 2, w // 2), kernel=2))
            x, shape = pool_or(x, 2), (n, h // 2, w // 2)
    for i, n in enumerate(FC_SIZES, 1):
        layers.append(SnnLayer(f"fc{i}", "fc", shape, (n,),
                               _weights(rng, (n, int(np.prod(shape))))))
        x, shape = _calibrate(layers[-1], x.reshape(len(x), -1), target_rate), (n,)
    net = SnnNet("flexspim_dvs128" + (f"_d{downsample}" if downsample > 1 else ""),
                 (INPUT[0], side, side), layers, SnnSpec(),
                 meta={"n_steps": n_steps, "downsample": downsample, "seed": seed})
    net.validate()
    return net


def random_events(net: SnnNet, samples: int, steps: int, sparsity: float,
                  seed: int = 0) -> np.ndarray:
    """Binary input frames ``[samples, steps, *input_shape]``: every address spikes
    independently with probability ``1 - sparsity`` per timestep (seeded). Real DVS
    events cluster in space and time; this is the synthetic stand-in."""
    if not 0 <= sparsity <= 1:
        raise ConfigError(f"sparsity = {sparsity!r} must be in [0, 1] (fraction of input "
                          "addresses without an event per timestep)")
    rng = np.random.default_rng(seed)
    return rng.random((samples, steps, *net.input_shape)) >= sparsity
