"""Block pruning balanced per output channel and row tile (quant/prune.py) and what it
buys in the dcim cycle model (mapping/tiling.py): 50% block sparsity costs at most
0.55x of the dense cycles on the layers of VGG16 and ResNet18."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import torch

from cimstack.config import DcimSpec
from cimstack.cost.calibrate import CIFAR_NETWORKS
from cimstack.mapping.tiling import kept_blocks, layer_cost
from cimstack.quant.prune import block_mask, block_norms


def _tile_widths(k: int, rows_on: int, rows: int) -> list[int]:
    """Groups per row tile, computed here without the pruning module."""
    groups, per_tile = -(-k // rows_on), rows // rows_on
    return [min(per_tile, groups - g0) for g0 in range(0, groups, per_tile)]


@given(n=st.integers(1, 24), k=st.integers(1, 700), rows_on=st.sampled_from([1, 4, 8, 16]),
       tile_groups=st.integers(1, 12), sparsity=st.floats(0.0, 0.95),
       seed=st.integers(0, 2**16))
@example(n=5, k=256, rows_on=16, tile_groups=16, sparsity=0.5, seed=0)    # K = rows
@example(n=5, k=257, rows_on=16, tile_groups=16, sparsity=0.5, seed=0)    # K = rows + 1
@example(n=5, k=9, rows_on=16, tile_groups=16, sparsity=0.9, seed=0)      # K < rows_on
@example(n=1, k=600, rows_on=16, tile_groups=4, sparsity=0.5, seed=0)     # one channel
@example(n=3, k=64, rows_on=4, tile_groups=1, sparsity=0.7, seed=1)       # one group a tile
def test_mask_is_balanced_per_channel_and_row_tile(n, k, rows_on, tile_groups, sparsity,
                                                   seed):
    rows = rows_on * tile_groups
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(seed))
    mask = block_mask(w, rows_on, sparsity, rows)
    kept = kept_blocks((w * mask).numpy().T, rows_on).T            # [N, G]
    norms = block_norms(w, rows_on).numpy()
    g0 = 0
    for width in _tile_widths(k, rows_on, rows):
        tile = kept[:, g0:g0 + width]
        per_channel = tile.sum(axis=1)
        assert len(set(per_channel.tolist())) == 1                  # balanced in the tile
        kept_here = int(per_channel[0])
        pruned = width - kept_here
        # the asked sparsity within rounding, unless the one-block floor holds it back
        assert kept_here == 1 or abs(pruned / width - sparsity) <= 0.5 / width + 1e-12
        assert kept_here >= 1
        # the pruned blocks are the weakest of their channel in this tile
        tn = norms[:, g0:g0 + width]
        for c in range(n):
            gone, stay = tn[c][~tile[c]], tn[c][tile[c]]
            assert not gone.size or gone.max() <= stay.min()
        g0 += width


def _cifar_layer_shapes() -> list[tuple[int, int]]:
    """Distinct (K, N) of every conv and fc layer of VGG16 and ResNet18 on 3x32x32
    (K = 27, 576, 1152, 2304, 4608 and the 1x1 shortcuts' 64, 128, 256; fc 512)."""
    shapes = {(c * kk * kk, n) for net in CIFAR_NETWORKS.values()
              for _, c, n, kk, *_ in net()}
    return sorted(shapes)


def _cycle_ratio(k: int, n: int, spec: DcimSpec, rows: int) -> float:
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(k * 1000 + n))
    w_mat = (w * block_mask(w, spec.rows_on, 0.5, rows)).numpy().T
    cost = layer_cost(w_mat, 8, 8, spec)
    return cost.cycles / cost.dense_cycles


@pytest.mark.parametrize("macros", [1, 4])
def test_half_sparsity_halves_the_cycles_of_vgg16_and_resnet18(macros):
    """The acceptance of "block pruning that keeps its promise on layers larger than one
    macro": at 50% block sparsity every layer of VGG16 and ResNet18 costs at most 0.55x
    of its dense cycles (W8A8, default DcimSpec, 1 or 4 macros). It fails with pruning
    balanced per channel over the whole layer only (checked once against that mask:
    0.69x to 0.83x for K >= 576, 0.59x to 0.63x for the fc's K = 512), which the last
    assertion shows on K = 1152."""
    spec = DcimSpec(macros=macros)
    shapes = _cifar_layer_shapes()
    assert {k for k, _ in shapes} >= {27, 64, 128, 256, 576, 1152, 2304, 4608}
    ratios = {(k, n): _cycle_ratio(k, n, spec, spec.rows) for k, n in shapes}
    assert max(ratios.values()) <= 0.55, ratios
    # one row tile spanning the whole layer = balance per channel only: the busiest
    # channel of each macro tile keeps ~12 of 16 blocks
    assert _cycle_ratio(1152, 256, spec, rows=4096) > 0.7
