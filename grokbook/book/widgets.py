"""The data-regime explorer: how |E|, |R|, out-degree, φ and the OOD ratio size every set.

Two views of the same numbers:

- ``regime_explorer()``: ipywidgets sliders, live in Jupyter/Colab. Sizes come from
  ``grokbook.data.graph_stats`` (expected values, instant); for small graphs the exact
  numbers of ``build_dataset`` are shown beside them.
- ``regime_grid_chart()``: an Altair chart over a precomputed grid whose sliders are
  chart parameters, so the static book page is explorable without a kernel.

An impossible φ (more two-hop facts than the pool holds) is reported, never raised.
"""
from __future__ import annotations

import altair as alt
import pandas as pd

from ..core.config import ConfigError, DataConfig
from ..core.data import build_dataset, graph_stats
from .charts import LOG_AXIS, SET_LABELS, composition_chart, set_sizes

EXACT_LIMIT = 20_000   # build the real dataset only up to this many atomic facts
ITD = 0.005            # held-out share of ID two-hop facts (the papers' value)


def regime_stats(n_entities: int, n_relations: int, out_degree: int, phi: float,
                 ood_ratio: float, exact: bool = False, seed: int = 0) -> dict:
    """Sizes of every set for one data regime, with ``problem`` set when it is impossible."""
    if out_degree > n_relations:
        return {"problem": f"out-degree {out_degree} > |R| = {n_relations}: each head needs "
                           f"that many distinct relations"}
    s = graph_stats(n_entities, n_relations, out_degree, ood_ratio, ITD, phi)
    s["problem"] = None if s["phi_possible"] else (
        f"φ = {phi:g} is impossible here: the pool of ID two-hop facts allows at most "
        f"φ = {s['max_phi']:.2f}")
    if exact and s["phi_possible"] and s["atomic"] <= EXACT_LIMIT:
        try:
            ds = build_dataset(DataConfig(n_entities=n_entities, n_relations=n_relations,
                                          out_degree=out_degree, ood_ratio=ood_ratio,
                                          iid_test_ratio=ITD, phi=phi), seed)
            s["exact"] = ds.counts
        except ConfigError as e:  # the exact pool can be a little smaller than expected
            s["problem"] = str(e)
    return s


def _report(s: dict) -> str:
    if "atomic" not in s:
        return f"<b style='color:#b00'>⚠ {s['problem']}</b>"
    lines = [f"max φ = <b>{s['max_phi']:.2f}</b> (≈ out-degree × (1 − OOD ratio))"]
    if s["problem"]:
        lines.append(f"<b style='color:#b00'>⚠ {s['problem']}</b>")
    if s.get("exact"):
        e = s["exact"]
        lines.append(f"exact (seed 0): {e['train_inferred']} two-hop in training, "
                     f"{e['test_inferred_iid']} held-out ID, {e['test_inferred_ood']} OOD "
                     f"two-hop, max φ {e['max_phi']:.3f}")
    return "<br>".join(lines)


def regime_explorer(n_entities: int = 2000, n_relations: int = 200, out_degree: int = 20,
                    phi: float = 18.0, ood_ratio: float = 0.05):
    """Sliders -> set sizes, max φ and a chart. Returns the widget (display it)."""
    import ipywidgets as w
    from IPython.display import HTML, display
    style = {"description_width": "150px"}
    layout = w.Layout(width="480px")
    sliders = dict(
        n_entities=w.IntSlider(value=n_entities, min=20, max=5000, step=10, description="|E| entities",
                               style=style, layout=layout),
        n_relations=w.IntSlider(value=n_relations, min=2, max=400, step=1, description="|R| relations",
                                style=style, layout=layout),
        out_degree=w.IntSlider(value=out_degree, min=1, max=40, step=1, description="out-degree",
                               style=style, layout=layout),
        phi=w.FloatSlider(value=phi, min=0.0, max=30.0, step=0.1, description="φ (inferred/atomic)",
                          style=style, layout=layout),
        ood_ratio=w.FloatSlider(value=ood_ratio, min=0.01, max=0.5, step=0.01, description="OOD ratio",
                                style=style, layout=layout),
    )
    exact = w.Checkbox(value=False, description="exact numbers (small graphs)", style=style)

    def show(exact, **kw):
        s = regime_stats(exact=exact, **kw)
        display(HTML(_report(s)))
        if "atomic" in s:
            display(composition_chart(set_sizes(s), title="Expected sizes of the sets"))

    out = w.interactive_output(show, dict(sliders, exact=exact))
    return w.VBox([w.HBox([w.VBox(list(sliders.values())[:3]),
                           w.VBox(list(sliders.values())[3:] + [exact])]), out])


# ---------------------------------------------------------------- the static view
GRID = dict(n_entities=[100, 200, 500, 1000, 2000, 5000], out_degree=[5, 10, 20, 30],
            ood_ratio=[0.02, 0.05, 0.1, 0.2], phi=[round(1.8 * k, 1) for k in range(1, 17)])
GRID_SETS = ["atomic", "id_atomic", "ood_atomic", "train_inferred", "test_inferred_iid",
             "test_inferred_ood", "train"]


def regime_grid(grid: dict = GRID) -> pd.DataFrame:
    """Expected set sizes over a grid of regimes, one row per regime, one column per set
    (named by its label). |R| does not change expected sizes; it only has to be at least
    the out-degree. An impossible φ has no two-hop training set (size 0)."""
    rows = []
    for E in grid["n_entities"]:
        for d in grid["out_degree"]:
            for ood in grid["ood_ratio"]:
                for phi in grid["phi"]:
                    st = graph_stats(E, d, d, ood, ITD, phi)
                    st["train"] = st["train_total"]
                    row = {"E": E, "d": d, "ood": ood, "phi": phi, "max_phi": st["max_phi"],
                           "possible": bool(st["phi_possible"])}
                    row.update({SET_LABELS[k]: int(st[k] or 0) for k in GRID_SETS})
                    rows.append(row)
    return pd.DataFrame(rows)


def regime_grid_chart(grid: pd.DataFrame | None = None, E: int = 2000, d: int = 20,
                      ood: float = 0.05, phi: float = 18.0) -> alt.Chart:
    """Set sizes for the regime picked with the chart's own controls (no kernel needed)."""
    grid = regime_grid() if grid is None else grid
    labels = [SET_LABELS[k] for k in GRID_SETS]
    pE = alt.param("pE", value=E, bind=alt.binding_select(
        options=[int(v) for v in sorted(grid.E.unique())], name="|E| entities "))
    pd_ = alt.param("pd", value=d, bind=alt.binding_select(
        options=[int(v) for v in sorted(grid.d.unique())], name="out-degree "))
    pood = alt.param("pood", value=ood, bind=alt.binding_radio(
        options=[float(v) for v in sorted(grid.ood.unique())], name="OOD ratio "))
    phis = sorted(grid.phi.unique())
    pphi = alt.param("pphi", value=phi, bind=alt.binding_range(
        min=float(phis[0]), max=float(phis[-1]), step=float(phis[1] - phis[0]), name="φ "))
    picked = ("datum.E == pE && datum.d == pd && abs(datum.ood - pood) < 1e-6 "
              "&& abs(datum.phi - pphi) < 1e-6")
    base = alt.Chart(grid).transform_filter(picked)
    bars = base.transform_fold(labels, as_=["set", "size"]).transform_filter(
        "datum.size > 0").mark_bar().encode(
        y=alt.Y("set:N", sort=labels, title=None),
        x=alt.X("size:Q", scale=alt.Scale(type="symlog", domain=[0, 3e7]),
                title="number of facts (log-like scale)", axis=LOG_AXIS),
        color=alt.Color("set:N", legend=None, scale=alt.Scale(domain=labels, range=[
            "#555", "#ff9f40", "#ffcc99", "#1f77b4", "#2ca02c", "#d62728", "#333"])),
        tooltip=["set:N", "size:Q"])
    text = bars.mark_text(align="left", dx=3).encode(text="size:Q", color=alt.value("#222"))
    note = base.transform_calculate(
        msg="datum.possible ? 'max φ = ' + format(datum.max_phi, '.2f') + ': this φ is possible'"
            " : 'φ = ' + format(pphi, '.1f') + ' is IMPOSSIBLE: max φ = ' + "
            "format(datum.max_phi, '.2f')"
    ).mark_text(align="left", fontSize=14, fontWeight="bold").encode(
        x=alt.value(0), y=alt.value(7), text="msg:N",
        color=alt.condition("datum.possible", alt.value("#2a7"), alt.value("#d62728")))
    return alt.vconcat(note.properties(width=420, height=14),
                       (bars + text).properties(width=420, height=190)).add_params(
        pE, pd_, pood, pphi).properties(
        title="Expected set sizes of a data regime (controls below the chart)")


def phi_table(n_entities: int, n_relations: int, out_degree: int, ood_ratio: float,
              phis=(3.6, 5.4, 7.2, 9.0, 12.6, 18.0, 21.6)) -> pd.DataFrame:
    """Two-hop training facts for the study's φ values (and one impossible one)."""
    rows = []
    for phi in phis:
        s = graph_stats(n_entities, n_relations, out_degree, ood_ratio, ITD, phi)
        rows.append({"phi": phi, "train_inferred": round(phi * s["id_atomic"]),
                     "possible": bool(s["phi_possible"]), "max_phi": s["max_phi"]})
    return pd.DataFrame(rows)
