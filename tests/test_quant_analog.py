"""Noise-aware training of the analog digits model: ADC in the loop with straight-through
gradients, BN folded into the ADC gain/offset, export to the integer reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cimstack.config import AcimSpec
from cimstack.quant.analog import (AnalogDigitsNet, init_from_float, train_analog_digits,
                                   train_float)
from cimstack.ref.network import integer_accuracy, integer_predictions
from cimstack.quant.data import load_digits_split

ADC_BITS = 4
TRAIN_SIGMA = 2.0
MARGIN = 0.02          # noise-aware must beat noise-unaware by 2 points at sigma = 2 LSB


@pytest.fixture(scope="module")
def data():
    return load_digits_split()


@pytest.fixture(scope="module")
def float_model(data):
    return train_float(seed=0, epochs=3, data=data, threads=1)


def test_init_from_bn_matches_integer_reference(float_model, data):
    """Before fine-tuning: BN folded into the ADC; torch codes = integer reference codes."""
    torch.manual_seed(0)
    net = AnalogDigitsNet(AcimSpec(adc_bits=6))
    init_from_float(net, float_model, data.x_train)
    x = torch.from_numpy(data.x_test[:120])
    with torch.no_grad():
        torch_pred = net.codes(x).argmax(1).numpy()
    from cimstack.quant.analog import export_analog
    ex = export_analog(net)
    assert np.mean(integer_predictions(ex, data.x_test[:120]) == torch_pred) >= 0.98
    assert integer_accuracy(ex, data.x_test, data.y_test) > 0.8
    lo, hi = AcimSpec().gain_range
    for layer in ex.macro_layers:
        assert layer.macro == "acim" and np.issubdtype(layer.analog.gain.dtype, np.integer)
        assert (layer.analog.gain >= lo).all() and (layer.analog.gain <= hi).all()
    assert ex.acim.adc_bits == 6


def test_straight_through_gradients(float_model, data):
    net = AnalogDigitsNet(AcimSpec(adc_bits=4, sigma=0.0))
    init_from_float(net, float_model, data.x_train)
    net.set_noise(1.0)
    loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(data.x_train[:64])),
                                             torch.from_numpy(data.y_train[:64]))
    loss.backward()
    for layer in net.macro_layers:
        assert layer.inner.weight.grad is not None and layer.inner.weight.grad.abs().sum() > 0
        assert layer.log2_gain.grad.abs().sum() > 0
        assert layer.offset_h.grad.abs().sum() > 0


@pytest.mark.slow
def test_noise_aware_beats_noise_unaware(float_model, data):
    spec = AcimSpec(adc_bits=ADC_BITS)
    acc = {}
    for label, ts in (("unaware", 0.0), ("aware", TRAIN_SIGMA)):
        res = train_analog_digits(spec, ts, epochs=3, seed=0, float_model=float_model,
                                  threads=1)
        ex = res.export()
        clean = integer_accuracy(ex, data.x_test, data.y_test)
        assert clean > 0.9, (label, clean)
        acc[label] = np.mean([integer_accuracy(ex.with_acim(sigma=2.0, seed=k), data.x_test,
                                               data.y_test) for k in range(2)])
    assert acc["aware"] >= acc["unaware"] + MARGIN, acc
