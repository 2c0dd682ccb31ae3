"""verify: a faithful engine is bit-exact; a faulty one is caught at the right layer."""

import numpy as np

from cimstack.ref.network import reference_engine
from cimstack.verify.compare import verify


def test_reference_against_itself_is_exact(small_bundle, tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (6, 1, 8, 8))
    rep = verify(small_bundle, x, reference_engine, "reference", labels=np.zeros(6, int))
    assert rep.ok and rep.prediction_agreement == 1.0
    assert [l.name for l in rep.layers] == [l.name for l in small_bundle.layers]
    rep.write(tmp_path)
    assert "BIT-EXACT" in (tmp_path / "verify.txt").read_text()


def test_one_flipped_output_is_located(small_bundle):
    def faulty(layer, x_mat, bundle):
        y = reference_engine(layer, x_mat, bundle)
        if layer.name == "conv2":
            y[3, 5] += 1
        return y

    x = np.random.default_rng(1).integers(0, 256, (2, 1, 8, 8))
    rep = verify(small_bundle, x, faulty, "faulty")
    by_name = {l.name: l for l in rep.layers}
    assert by_name["conv1"].ok and by_name["pool1"].ok
    assert by_name["conv2"].mismatches == 1
    # vector 3 of conv2 = image 0, pixel (0, 3); channel 5
    assert by_name["conv2"].first_mismatches[0][0] == [0, 5, 0, 3]
    assert not rep.ok
