"""IMAGINE's channel-wise array split (cimstack.mapping.imagine): every channel's rows
stay inside one segment, the active segments and N_norm follow, a layer that maps has
the N_norm the reference and kernel compute, a layer that does not is refused with one
line naming segments that map it; the imagine_cnn zoo bundle maps on the default split,
shows its per-layer adaptive swing in `cimstack cost`, and old segments=9 bundles load
and run as before."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cimstack.bundle import MacroLayer, Requant, load_bundle, save_bundle
from cimstack.config import AcimSpec
from cimstack.errors import ConfigError
from cimstack.mapping.imagine import (channel_split, check_channel_split, layer_split,
                                      mapping_segments, split_plan)

SEGMENTS_1152 = [n for n in range(1, 1153) if 1152 % n == 0]


def conv(channels: int, ksize: int, name: str = "c") -> MacroLayer:
    """A conv2d MacroLayer with ``channels`` inputs of ``ksize`` x ``ksize`` kernels."""
    w = np.ones((4, channels, ksize, ksize), np.int8)
    return MacroLayer(name, "conv2d", w, 4, 4, Requant(np.ones(4, np.int64), np.zeros(4, np.int64),
                                                       0, 0, 15),
                      (channels, 8, 8), (4, 8 - ksize + 1, 8 - ksize + 1))


@given(channels=st.integers(1, 1200), area=st.sampled_from([1, 4, 9, 16, 25, 49]),
       segments=st.sampled_from(SEGMENTS_1152[:12]), swing=st.sampled_from(["adaptive", "fixed"]))
@example(channels=1152, area=1, segments=8, swing="adaptive")        # A = 1, array full
@example(channels=1153, area=1, segments=8, swing="adaptive")        # one channel over
@example(channels=128, area=9, segments=8, swing="adaptive")         # 3x3 filling the array
@example(channels=129, area=9, segments=8, swing="adaptive")         # one channel over
@example(channels=128, area=9, segments=9, swing="adaptive")         # 128-row segments cut
@example(channels=11, area=25, segments=8, swing="adaptive")         # 5x5: 3 aligned vs 2
@example(channels=46, area=25, segments=1, swing="adaptive")         # one segment, full
@example(channels=47, area=25, segments=1, swing="adaptive")
@example(channels=3, area=9, segments=1, swing="fixed")
def test_channels_stay_inside_segments_and_n_norm_matches_the_kernel(channels, area,
                                                                      segments, swing):
    spec = AcimSpec(segments=segments, swing=swing)
    s = channel_split(spec, channels, area)
    k = channels * area
    assert (s.k, s.seg_rows, s.norm_fixed) == (k, 1152 // segments, 1152)
    if s.per_segment:
        # channel-major placement: channel c at row (c // per) * S + (c % per) * A
        c = np.arange(channels)
        first = (c // s.per_segment) * s.seg_rows + (c % s.per_segment) * area
        assert np.all(first // s.seg_rows == (first + area - 1) // s.seg_rows)   # no cut
        assert s.segments == (first[-1] + area - 1) // s.seg_rows + 1          # used, no more
        assert s.end_rows == s.seg_rows - s.per_segment * area < area
        assert s.segments >= s.packed_segments == math.ceil(k / s.seg_rows)
    assert s.maps == (k <= 1152 and s.per_segment > 0 and s.segments <= segments
                      and (swing == "fixed" or s.segments == s.packed_segments))
    if segments == 1 or (1152 // segments) % area == 0:
        assert s.maps == (k <= 1152)                   # A divides S: always aligned
    if not s.maps:
        return
    # a layer that maps has the N_norm of the reference and kernel (AcimSpec.norm_rows)
    if swing == "adaptive":
        assert s.norm_adaptive == spec.norm_rows(k) == s.segments * s.seg_rows
    assert s.idle_rows == s.norm_adaptive - k >= 0
    assert s.bits_recovered == pytest.approx(math.log2(1152 / s.norm_adaptive))


@given(channels=st.integers(1, 300), ksize=st.sampled_from([1, 3, 5, 7]),
       segments=st.sampled_from([8, 9, 16, 32]))
@example(channels=128, ksize=3, segments=9)
@example(channels=11, ksize=5, segments=8)
@example(channels=200, ksize=3, segments=8)                          # K > rows
def test_a_layer_that_does_not_map_is_refused_naming_segments_that_map(channels, ksize,
                                                                      segments):
    spec = AcimSpec(segments=segments)
    layer = conv(channels, ksize)
    if channel_split(spec, channels, ksize * ksize).maps:
        check_channel_split(spec, layer_split(spec, layer))
        assert mapping_segments(spec, channels, ksize * ksize) == segments
        return
    with pytest.raises(ConfigError) as err:
        check_channel_split(spec, layer_split(spec, layer))
    text = str(err.value)
    assert "\n" not in text and "--macro dcim" in text and text.startswith("layer c: ")
    fix = mapping_segments(spec, channels, ksize * ksize)
    if channels * ksize * ksize > 1152:
        assert fix is None and "reduce its inputs" in text
    else:
        assert 1 <= fix < segments and f"--set segments={fix}" in text
        check_channel_split(replace(spec, segments=fix), layer_split(replace(spec, segments=fix),
                                                                     layer))


def test_the_issue_case_128_row_segments_cut_3x3_channels():
    old = channel_split(AcimSpec(segments=9), 128, 9)
    assert (old.per_segment, old.end_rows, old.segments, old.maps) == (14, 2, 10, False)
    new = channel_split(AcimSpec(), 128, 9)
    assert (AcimSpec().segments, new.seg_rows, new.per_segment, new.end_rows) == (8, 144, 16, 0)
    assert (new.segments, new.norm_adaptive, new.maps) == (8, 1152, True)
    # the paper's example: 144 of 1152 rows active recovers 3 ADC bits
    assert channel_split(AcimSpec(), 16, 9).bits_recovered == 3.0


# ------------------------------------------------------------------ the zoo network

@pytest.fixture(scope="module")
def imagine_onnx(tmp_path_factory):
    import torch
    from cimstack.models.zoo import MODELS, build, export
    entry = MODELS["imagine_cnn"]
    return export(build("imagine_cnn", seed=1), torch.zeros(entry.input_shape),
                  tmp_path_factory.mktemp("imagine") / "imagine_cnn.onnx")


# (C, A, active segments, N_norm adaptive) of imagine_cnn's layers on 8 x 144 rows
IMAGINE_SPLIT = [(3, 9, 1, 144), (64, 9, 4, 576), (64, 9, 4, 576), (128, 9, 8, 1152),
                 (128, 9, 8, 1152), (128, 9, 8, 1152), (128, 1, 1, 144)]


def test_imagine_cnn_maps_channel_aligned_and_cost_shows_its_swing(imagine_onnx, tmp_path):
    from badcase import run_cli
    code, out = run_cli(["import", str(imagine_onnx), "--out", "b", "--macro", "acim"],
                        tmp_path)
    assert code == 0, out
    bundle = load_bundle(tmp_path / "b")
    plan = split_plan(bundle.layers, bundle.acim)
    assert [(p.channels, p.area, p.segments, p.norm_adaptive) for p in plan] == IMAGINE_SPLIT
    assert all(p.maps and p.end_rows == 0 for p in plan)
    # every layer's ADC full scale (its ABN gain) was set with this N_norm
    for layer, p in zip([x for x in bundle.layers if isinstance(x, MacroLayer)], plan):
        assert bundle.acim.norm_rows(layer.k) == p.norm_adaptive
    code, out = run_cli(["cost", "b", "--json", "cost.json"], tmp_path)
    assert code == 0, out
    assert "channel-wise split, 8 segments of 144 rows" in out
    rows = json.loads((tmp_path / "cost.json").read_text())["acim_split"]
    assert [r["bits_recovered"] for r in rows] == [3.0, 1.0, 1.0, 0.0, 0.0, 0.0, 3.0]
    # the emulated acim kernel gives the reference's codes on every layer
    code, out = run_cli(["verify", "b", "--random", "1"], tmp_path)
    assert code == 0 and "BIT-EXACT" in out, out
    # 128-row segments cut 3x3 channels: refused with one line naming segments that map
    code, out = run_cli(["import", str(imagine_onnx), "--out", "c", "--macro", "acim", "--set",
                         "segments=9"], tmp_path)
    assert code == 2 and len(out.strip().splitlines()) == 1, out
    assert "needs 10 of 9 segments" in out and "--set segments=8" in out
    assert not (tmp_path / "c").exists()


def test_an_old_segments_9_bundle_loads_and_runs_as_before(imagine_onnx, tmp_path):
    from cimstack.importer.qonnx_import import import_qonnx
    from cimstack.ref.acim import acim_codes
    from cimstack.ref.network import quantize_input, run_network
    bundle = import_qonnx(imagine_onnx, macro="acim")
    old = bundle.with_acim(segments=9)                 # as imported before the split change
    save_bundle(old, tmp_path / "old")
    loaded = load_bundle(tmp_path / "old")
    assert loaded.acim.segments == 9 and loaded.acim.norm_rows(1152) == 1152
    assert loaded.acim.norm_rows(576) == 640           # ceil(K / 128) * 128, as before
    x = quantize_input(loaded, np.random.default_rng(0).random((1, 3, 32, 32), np.float32))
    assert run_network(loaded, x).logits.shape == (1, 10)
    # a 3x3 layer of 64 channels: the codes use N_norm = 640 (5 x 128 rows)
    layer = next(x for x in loaded.layers if isinstance(x, MacroLayer) and x.k == 576)
    rng = np.random.default_rng(1)
    xs = rng.integers(0, 1 << layer.x_bits, (4, 576))
    got = acim_codes(xs, layer.matrix(), layer.w_bits, layer.x_bits, loaded.acim,
                     layer.analog.gain, layer.analog.offset)
    want = acim_codes(xs, layer.matrix(), layer.w_bits, layer.x_bits,
                      replace(AcimSpec(), rows=640, segments=1, swing="fixed"),
                      layer.analog.gain, layer.analog.offset)
    np.testing.assert_array_equal(got, want)


def test_the_analog_training_refuses_a_split_that_cuts_its_channels():
    from cimstack.quant.analog import AnalogDigitsNet
    AnalogDigitsNet(AcimSpec())
    with pytest.raises(ConfigError, match=r"9-row channels > 8-row segments; use --set "
                                          r"segments=128 or --macro dcim"):
        AnalogDigitsNet(AcimSpec(segments=144))
