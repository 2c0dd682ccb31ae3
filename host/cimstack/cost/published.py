"""A network's modelled figures beside the papers' published ones, as plain rows for the
cost command and the report.

The published figures are the papers' chips on the papers' networks
(:data:`~cimstack.cost.constants.PAPER_POINTS`); a row says whether the published point
is about the same network as the bundle (``same_network``: VGG16 beside a bundle named
vgg16), else it is context, not a check. For the analog macro the paper's "efficiency"
is the macro's (array and ADC energy only), so it stands beside the model's macro
efficiency; its "system_efficiency" beside the whole network's TOPS/W.
"""

from __future__ import annotations

from .constants import PAPER_POINTS

# (family, published figure) -> the key of the model's figures it compares with
_COMPARED = {("acim", "efficiency"): "macro efficiency",
             ("acim", "system_efficiency"): "efficiency"}


def model_figures(totals: dict) -> dict[str, str]:
    """The model's figures that have published counterparts, formatted, from a network
    cost's ``totals`` (:meth:`~cimstack.cost.network.NetworkCost.to_dict`)."""
    macro = totals["energy_array_pj"] + totals["energy_readout_pj"]
    return {"efficiency": f"{totals['tops_per_w']:.1f} TOPS/W",
            "throughput": f"{totals['images_per_s']:,.0f} frames/s",
            "macro efficiency": f"{totals['ops'] / macro * 1e-3:.3g} POPS/W" if macro else "-"}


def beside_published(net: dict) -> list[dict]:
    """One row per published point of the families ``net`` (a network cost dict) uses:
    family, figure, model, published, at (network, dataset or bits), paper, same_network."""
    mine = model_figures(net["totals"])
    name = net["name"].lower()
    rows = []
    for family in net["totals"]["resident"]:
        for p in PAPER_POINTS.get(family, []):
            figure = _COMPARED.get((family, p["figure"]), p["figure"])
            if figure not in mine:
                continue
            over = " (over)" if "lower bound" in p.get("note", "") else ""
            rows.append({"family": family, "figure": figure, "model": mine[figure],
                         "published": f"{p['value']:g} {p['unit']}{over}",
                         "at": p.get("network") or p.get("dataset") or f"{p['bits']} b",
                         "paper": p["source"].split(" (")[0],
                         "same_network": bool(p.get("network"))
                         and p["network"].lower() in name})
    return rows


def published_overlay() -> tuple[str, float]:
    """The published FPGA overlay figure shown beside the overlay model's: a label saying
    whose it is, and its images/s (FINN's BNN-PYNQ CNV-W1A1 on the PYNQ-Z2)."""
    p = PAPER_POINTS["fpga"][0]
    return (f"published ({p['source'].split(' (')[0]}, {p['network']}-W{p['bits']}A"
            f"{p['bits']}, {p['board']})", p["value"])
