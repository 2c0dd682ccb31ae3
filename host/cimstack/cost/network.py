"""Per-image energy, latency and area of a dcim / acim (or mixed) bundle.

Layers run one after another. A family's weights stay resident when all its layers'
tiles fit its macros at once (dcim: ``cores * macros`` tiles, acim: one array);
otherwise every layer's weights are written into the macros once per ``batch`` images
(dcim: from the cores' weight SRAM or, for the layers it has no room for, from DRAM:
:mod:`cimstack.mapping.mars`). ``energy_pj`` is the chip's energy (array, read-out,
operand movement on chip), the figure compared with the papers' TOPS/W;
``energy_dram_pj`` (weights streamed from DRAM) is reported beside it, not in it
(docs/cost.md, "DRAM").
Operations are dense-equivalent: ``2 * K * N`` per input vector (a multiply and an add
per weight), also for pruned blocks, which cost nothing; ``ops_performed`` counts only
the kept weights.

A graph bundle's other nodes (maxpool2d, avgpool2d, add, concat, flatten) run on the
host: no macro energy, no macro time, and no extra operand movement (the macro layers'
input and output bits already count every activation tensor between macros once each
way). ``totals["host_nodes"]`` counts them by op.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..bundle import MacroLayer
from ..errors import ConfigError
from ..families import get_family
from ..ref.network import layer_stats
from .constants import AcimConstants, DcimConstants, check_count

SUMMED = ("ops", "ops_performed", "cycles", "latency_s", "energy_pj", "energy_array_pj",
          "energy_readout_pj", "energy_move_pj", "in_bits", "out_bits", "weight_bits")
# summed too; a family without a DRAM tier (no such keys in its layer_cost) gives 0
DRAM_SUMMED = ("dram_bits", "energy_dram_pj")


def per_pj(ops: float, energy_pj: float) -> float:
    """Operations per pJ = TOPS/W (0 for zero energy, e.g. all constants set to 0)."""
    return ops / energy_pj if energy_pj else 0.0


def host_nodes(bundle) -> dict[str, int]:
    """How many of ``bundle``'s nodes of each op run on the host (not on a macro)."""
    counts: dict[str, int] = {}
    for layer in bundle.layers:
        if not isinstance(layer, MacroLayer):
            counts[layer.op] = counts.get(layer.op, 0) + 1
    return counts


@dataclass
class NetworkCost:
    """Cost of one image: ``layers`` one dict per macro layer, ``totals`` the network."""

    name: str
    batch: int
    layers: list[dict]
    totals: dict

    def to_dict(self) -> dict:
        """Plain JSON-able dict."""
        return {"name": self.name, "batch": self.batch, "layers": self.layers,
                "totals": self.totals}


def network_cost(bundle, *, batch: int = 1, dcim: DcimConstants | None = None,
                 acim: AcimConstants | None = None,
                 constants: dict | None = None) -> NetworkCost:
    """Per-image cost of every macro layer of ``bundle`` (a :class:`~cimstack.bundle.
    Bundle`) and of the network; ``batch``: images per weight reload. Each layer is
    costed by its macro family's model (:mod:`cimstack.families`) with the constants
    given for the family (``constants`` by family name; ``dcim``, ``acim`` for those
    two), else the family's defaults."""
    check_count("batch", batch, "images per weight reload")
    if not bundle.macro_layers:
        raise ConfigError(f"bundle {bundle.name} has no macro layer (conv2d or linear) to "
                          "cost")
    given = {"dcim": dcim, "acim": acim, **(constants or {})}
    families = {layer.macro: get_family(layer.macro) for layer in bundle.macro_layers}
    consts = {name: given.get(name) or fam.cost_constants() for name, fam in families.items()}
    stats = layer_stats(bundle)
    tiles = dict.fromkeys(families, 0)
    for st in stats:
        tiles[st.macro] += st.tiles
    reload = {name: tiles[name] > fam.resident_tiles(bundle) for name, fam in families.items()}
    maps = {name: fam.network_map(bundle, not reload[name])
            for name, fam in families.items() if fam.network_map}
    rows = []
    for layer, st in zip(bundle.macro_layers, stats):
        lmap = (maps[layer.macro][layer.name],) if layer.macro in maps else ()
        part = families[layer.macro].layer_cost(layer, st, bundle, consts[layer.macro],
                                                reload[layer.macro], batch, *lmap)
        ops = 2 * layer.k * layer.channels * st.vectors
        energy = part["energy_array_pj"] + part["energy_readout_pj"] + part["energy_move_pj"]
        rows.append({"layer": layer.name, "macro": layer.macro, "op": layer.op, "k": layer.k,
                     "n": layer.channels, "w_bits": layer.w_bits, "x_bits": layer.x_bits,
                     "vectors": st.vectors, "tiles": st.tiles, "ops": ops,
                     **dict.fromkeys(DRAM_SUMMED, 0), **part,
                     "energy_pj": energy, "tops_per_w": per_pj(ops, energy),
                     "resident": not reload[layer.macro]})
    totals = {key: sum(r[key] for r in rows) for key in SUMMED + DRAM_SUMMED}
    area = sum(fam.area_mm2(bundle, consts[name]) for name, fam in families.items())
    images_per_s = 1.0 / totals["latency_s"]
    with_dram = totals["energy_pj"] + totals["energy_dram_pj"]
    totals.update(tops_per_w=per_pj(totals["ops"], totals["energy_pj"]),
                  tops_per_w_with_dram=per_pj(totals["ops"], with_dram), images_per_s=images_per_s,
                  area_mm2=area, tops_per_mm2=totals["ops"] * images_per_s / area * 1e-12,
                  resident={m: not reload[m] for m in tiles if tiles[m]},
                  host_nodes=host_nodes(bundle))
    return NetworkCost(bundle.name, batch, rows, totals)
