"""Altair charts for the chapters. Every chart takes a pandas table and returns a chart.

Offline rendering. A chart is written into the notebook as a small HTML snippet: a
``<div>`` and a script that calls ``vegaEmbed``. The built book serves vega, vega-lite and
vega-embed itself (one bundle from ``vl_convert``, written to ``_static/vega-bundle.js`` by
``grokbook.book`` and loaded on every page), so the pages show their charts with no network.
In Jupyter or Colab, where that bundle is absent, the snippet loads the same libraries once
from a CDN. Element ids are derived from the spec, not random, so re-executing a notebook
gives byte-identical outputs (nbval needs no sanitizing for them).
"""
from __future__ import annotations

import hashlib
import json

import altair as alt
import pandas as pd

from ..analysis.definitions import run_summary

RENDERER = "grokbook"
BUNDLE_NAME = "vega-bundle.js"
LOG_AXIS = alt.Axis(values=[0, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000],
                    labelExpr="datum.value >= 1e6 ? datum.value / 1e6 + 'M' : "
                              "datum.value >= 1e3 ? datum.value / 1e3 + 'k' : datum.value")
PROBE_ORDER = ["train_inferred", "id_atomic", "ood_atomic", "test_inferred_iid",
               "test_inferred_ood"]
PROBE_COLORS = ["#1f77b4", "#7fb2e5", "#ff9f40", "#2ca02c", "#d62728"]

_count = 0

_TEMPLATE = """<div id="{div}" class="grokbook-chart" style="width:100%"></div>
<script type="text/javascript">
(function(spec, opt) {{
  var el = document.getElementById("{div}");
  function fail(err) {{
    el.innerHTML = '<pre style="color:#b00">chart could not be drawn: ' + err + '</pre>';
  }}
  function show() {{ window.vegaEmbed(el, spec, opt).catch(fail); }}
  if (typeof window.vegaEmbed === "function") {{ show(); return; }}
  // Not inside the built book (Jupyter, Colab): load the libraries once from a CDN.
  // AMD loaders (classic notebook) would swallow the UMD globals: hide define meanwhile.
  var libs = ["vega@{vega}", "vega-lite@{vegalite}", "vega-embed@{embed}"];
  window.__grokbookVega = window.__grokbookVega || libs.reduce(function(p, lib) {{
    return p.then(function() {{ return new Promise(function(ok, no) {{
      var s = document.createElement("script"), d = window.define;
      window.define = undefined;
      s.src = "https://cdn.jsdelivr.net/npm/" + lib;
      s.onload = function() {{ window.define = d; ok(); }};
      s.onerror = function() {{ window.define = d; no(new Error("cannot load " + lib)); }};
      document.head.appendChild(s);
    }}); }});
  }}, Promise.resolve());
  window.__grokbookVega.then(show, fail);
}})({spec}, {opt});
</script>"""


def _renderer(spec: dict, **metadata) -> dict:
    """Altair renderer: deterministic element id, libraries from the page or a CDN."""
    global _count
    _count += 1
    from altair.vegalite.v6.display import VEGA_VERSION, VEGAEMBED_VERSION, VEGALITE_VERSION
    body = json.dumps(spec, sort_keys=True)
    div = f"grokbook-chart-{hashlib.sha1(body.encode()).hexdigest()[:10]}-{_count}"
    opt = {"mode": "vega-lite", "actions": {"export": True, "source": False,
                                            "compiled": False, "editor": False}}
    opt.update(metadata.get("embed_options") or {})
    html = _TEMPLATE.format(div=div, spec=body, opt=json.dumps(opt), vega=VEGA_VERSION,
                            vegalite=".".join(VEGALITE_VERSION.split(".")[:2]),
                            embed=VEGAEMBED_VERSION)
    return {"text/html": html}


def setup(max_rows: int | None = 20000) -> None:
    """Call once per notebook: offline-capable renderer, larger data limit, one theme."""
    if RENDERER not in alt.renderers.names():
        alt.renderers.register(RENDERER, _renderer)
    alt.renderers.enable(RENDERER)
    alt.data_transformers.enable("default", max_rows=max_rows)


def write_bundle(directory) -> str:
    """Write vega + vega-lite + vega-embed (one script) for the built book's pages."""
    from pathlib import Path
    import vl_convert
    from altair.utils._importers import vl_version_for_vl_convert
    path = Path(directory) / BUNDLE_NAME
    # In a function scope: the bundle's top-level names (``_`` ...) would clash with the
    # page's other scripts; it publishes window.vegaEmbed, window.vega, window.vegaLite.
    js = ("(function () {\n"
          + vl_convert.javascript_bundle(vl_version=vl_version_for_vl_convert())
          + "\n}).call(window);\n")
    if not path.exists() or path.read_text() != js:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(js)
    return str(path)


# ---------------------------------------------------------------- training curves
def _metrics_of(run_or_metrics) -> tuple[pd.DataFrame, dict]:
    if isinstance(run_or_metrics, pd.DataFrame):
        return run_or_metrics, {}
    return run_or_metrics.metrics, run_summary(run_or_metrics)


def accuracy_curves(run_or_metrics, memorized_step=None, grokked_step=None,
                    title: str = "Accuracy per probe set", splits=None,
                    width: int = 400, height: int = 300) -> alt.Chart:
    """Accuracy per probe set vs step (log x), legend-selectable, with the memorized and
    grokked steps marked as vertical rules. Accepts a Run or a tidy metrics table
    (step, split, accuracy). For a Run, unmarked steps come from ``definitions.run_summary``."""
    metrics, summary = _metrics_of(run_or_metrics)
    memorized_step = memorized_step if memorized_step is not None else summary.get("memorized_step")
    grokked_step = grokked_step if grokked_step is not None else summary.get("grokked_step")
    m = metrics[(metrics.split != "train") & (metrics.step > 0)]
    if splits is not None:
        m = m[m.split.isin(splits)]
    m = m[["step", "split", "accuracy"]].reset_index(drop=True)
    order = [s for s in PROBE_ORDER if s in set(m.split)] + sorted(set(m.split) - set(PROBE_ORDER))
    colors = [PROBE_COLORS[PROBE_ORDER.index(s)] if s in PROBE_ORDER else "#777" for s in order]
    pick = alt.selection_point(fields=["split"], bind="legend")
    x = alt.X("step:Q", scale=alt.Scale(type="log", nice=False), title="training step (log scale)")
    lines = alt.Chart(m).mark_line(point=alt.OverlayMarkDef(size=18)).encode(
        x=x,
        y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), title="exact-match accuracy"),
        color=alt.Color("split:N", sort=order, scale=alt.Scale(domain=order, range=colors),
                        title="probe set"),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.12)),
        tooltip=["split", "step", alt.Tooltip("accuracy:Q", format=".3f")],
    ).add_params(pick)
    marks = pd.DataFrame([{"step": s, "event": e} for s, e in
                          ((memorized_step, "memorized"), (grokked_step, "grokked"))
                          if s is not None and s > 0], columns=["step", "event"])
    layers = [lines]
    if len(marks):
        rule = alt.Chart(marks).mark_rule(strokeDash=[5, 4], color="#444").encode(
            x="step:Q", tooltip=["event", "step"])
        text = alt.Chart(marks).mark_text(align="left", dx=4, dy=-6, color="#444").encode(
            x="step:Q", y=alt.value(height - 24), text=alt.Text("event:N"))
        layers += [rule, text]
    return alt.layer(*layers).properties(title=title, width=width, height=height)


def loss_curve(run_or_metrics, width: int = 400, height: int = 200) -> alt.Chart:
    """Training loss (mean over the steps since the previous evaluation), log-log."""
    metrics, _ = _metrics_of(run_or_metrics)
    m = metrics[(metrics.split == "train") & (metrics.step > 0)][["step", "loss"]].dropna()
    return alt.Chart(m.reset_index(drop=True)).mark_line(color="#1f77b4").encode(
        x=alt.X("step:Q", scale=alt.Scale(type="log"), title="training step (log scale)"),
        y=alt.Y("loss:Q", scale=alt.Scale(type="log"), title="training loss"),
        tooltip=["step", alt.Tooltip("loss:Q", format=".4f")],
    ).properties(title="Training loss", width=width, height=height)


# ---------------------------------------------------------------- data composition
SET_GROUPS = {
    "atomic": "atomic facts", "id_atomic": "atomic facts", "ood_atomic": "atomic facts",
    "id_inferred": "two-hop facts", "pool": "two-hop facts",
    "train_inferred": "two-hop facts", "test_inferred_iid": "two-hop facts",
    "test_inferred_ood": "two-hop facts", "augmented": "two-hop facts", "train": "training set",
}
SET_LABELS = {
    "atomic": "all atomic facts", "id_atomic": "ID atomic", "ood_atomic": "OOD atomic",
    "id_inferred": "ID two-hop (all)", "pool": "ID two-hop pool",
    "train_inferred": "two-hop in training", "test_inferred_iid": "held-out ID two-hop",
    "test_inferred_ood": "OOD two-hop", "augmented": "augmentation", "train": "training set",
}


def set_sizes(counts: dict) -> pd.DataFrame:
    """A dataset's counts (``ds.counts`` or ``graph_stats``) as a tidy table."""
    rows = [{"set": k, "label": SET_LABELS[k], "group": SET_GROUPS[k], "size": int(v)}
            for k, v in counts.items() if k in SET_LABELS and v]  # log scale: no zeros
    if "train" not in counts and counts.get("train_total") is not None:
        rows.append({"set": "train", "label": SET_LABELS["train"], "group": "training set",
                     "size": int(counts["train_total"])})
    return pd.DataFrame(rows, columns=["set", "label", "group", "size"])


def composition_chart(sizes: pd.DataFrame, title: str = "Sizes of the sets",
                      width: int = 380) -> alt.Chart:
    """Horizontal bars (log scale) of the set sizes from ``set_sizes``."""
    order = list(sizes["label"])
    bars = alt.Chart(sizes).mark_bar().encode(
        y=alt.Y("label:N", sort=order, title=None),
        # symlog: a log-like axis on which bars can start at zero
        x=alt.X("size:Q", scale=alt.Scale(type="symlog"), title="number of facts (log-like scale)",
                axis=LOG_AXIS),
        color=alt.Color("group:N", title=None, legend=alt.Legend(orient="bottom"),
                        scale=alt.Scale(domain=["atomic facts", "two-hop facts", "training set"],
                                        range=["#ff9f40", "#1f77b4", "#555"])),
        tooltip=["label", "size", "group"])
    text = bars.mark_text(align="left", dx=3).encode(text="size:Q", color=alt.value("#222"))
    return (bars + text).properties(title=title, width=width, height=22 * len(sizes))


def composition_pie(counts: dict, title: str = "What a training batch is made of") -> alt.Chart:
    """Share of atomic, two-hop (and augmentation) examples in the training set."""
    parts = pd.DataFrame([
        {"kind": "atomic facts (ID and OOD)", "n": int(counts["atomic"])},
        {"kind": "two-hop facts", "n": int(counts["train_inferred"])},
        {"kind": "augmentation", "n": int(counts.get("augmented") or 0)}])
    parts = parts[parts.n > 0].reset_index(drop=True)
    parts["share"] = parts.n / parts.n.sum()
    return alt.Chart(parts).mark_arc(innerRadius=50).encode(
        theta="n:Q", color=alt.Color("kind:N", title=None),
        tooltip=["kind", "n", alt.Tooltip("share:Q", format=".1%")],
    ).properties(title=title, width=220, height=220)


def phi_chart(table: pd.DataFrame, title: str = "Two-hop training facts as φ grows") -> alt.Chart:
    """``table``: phi, train_inferred (requested), possible, max_phi. Impossible φ in red,
    with the largest possible φ as a dashed rule."""
    t = table.assign(status=table.possible.map({True: "possible", False: "impossible"}))
    bars = alt.Chart(t).mark_bar().encode(
        x=alt.X("phi:Q", title="φ (two-hop facts per ID atomic fact)",
                scale=alt.Scale(domain=[0, float(t.phi.max()) + 1.8], nice=False)),
        y=alt.Y("train_inferred:Q", title="two-hop facts asked for"),
        color=alt.Color("status:N", title=None, legend=alt.Legend(orient="bottom"),
                        scale=alt.Scale(domain=["possible", "impossible"],
                                        range=["#1f77b4", "#d62728"])),
        tooltip=["phi", "train_inferred", "status", "max_phi"])
    rule = alt.Chart(t.iloc[[0]]).mark_rule(strokeDash=[5, 4], color="#d62728").encode(
        x="max_phi:Q")
    label = rule.transform_calculate(msg="'max φ ≈ ' + format(datum.max_phi, '.2f')").mark_text(
        align="left", dx=4, y=8, color="#d62728").encode(text="msg:N")
    return (bars.mark_bar(width=14) + rule + label).properties(title=title, width=420,
                                                                height=220)


# ---------------------------------------------------------------- tables for the chapters
def example_facts(ds, name: str, n: int = 5) -> pd.DataFrame:
    """The first ``n`` queries of a set, written as the model sees them (tokens)."""
    table = {"train": ds.train, "atomic": ds.atomic}.get(name) or ds.probes[name]
    v = ds.vocab
    rows = []
    for i in range(min(n, len(table["h"]))):
        h, r1, r2, b, t = (int(table[c][i]) for c in ("h", "r1", "r2", "b", "t"))
        inp = [v.token_name(h), v.token_name(v.n_entities + r1)]
        inp.append(v.token_name(v.n_entities + r2) if r2 >= 0 else "<pad>")
        rows.append({"set": name, "input": " ".join(inp), "answer": v.token_name(t),
                     "bridge": v.token_name(b) if b >= 0 else ""})
    return pd.DataFrame(rows)


def model_shape(model) -> pd.DataFrame:
    """One row per parameter tensor: name, shape, count (shared tensors counted once)."""
    seen, rows = set(), []
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        rows.append({"parameter": name, "shape": " × ".join(map(str, p.shape)),
                     "count": p.numel()})
    return pd.DataFrame(rows)


def model_summary(model) -> pd.DataFrame:
    """Parameter counts grouped by part of the model (embeddings, each block, head)."""
    t = model_shape(model)
    t["part"] = t.parameter.str.extract(r"^(blocks\.\d+|[a-z_]+)")[0]
    return t.groupby("part", sort=False)["count"].sum().reset_index()
