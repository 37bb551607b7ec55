"""Writes book/07_verdict.ipynb (kept as a script so the notebook's source is reviewable)."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def code(src, tags=None):
    c = new_code_cell(src)
    if tags:
        c.metadata["tags"] = tags
    return c


cells = [
    new_markdown_cell("""# 7. Is grokking worthwhile? The cost ledger and the scorecard

The study's title asks a question about cost ([He et al. 2026](https://arxiv.org/abs/2601.09049),
arXiv 2601.09049): a transformer trained on two-hop facts memorizes them early and only
much later "groks" held-out compositions ([Wang et al. 2024](https://arxiv.org/abs/2405.15071),
arXiv 2405.15071). If the circuit found after grokking is not new (claim 1), can come apart
from accuracy (claim 2), and transfers only partly (claim 3), is the wait worth its compute?

This chapter answers with numbers this book computed. It gathers **every run the earlier
chapters trained** (from the run store: nothing is retrained when the book was built in
order), prices each one in steps, examples, FLOPs and seconds, and sets this book's number
for each claim beside the published one. Every verdict comes from a rule written next to
it and applied in code; none is typed by hand."""),
    code("""import sys
if "google.colab" in sys.modules:  # Colab only: install the library (torch is already there)
    %pip install -q "grokbook @ git+https://github.com/grokbook/grokbook\"""", ["remove-cell"]),
    code("""preset = "cpu"  # test (seconds), cpu (minutes on 2 cores), gpu, paper""",
         ["parameters", "remove-cell"]),
    code("""import pandas as pd
from IPython.display import Markdown
from grokbook.book import charts
from grokbook.chapters import study, verdict

charts.setup()
book = verdict.collect(preset)  # every run of chapters 2-6, from the store"""),
    new_markdown_cell("""## The cost ledger

One row per run: the default run of chapter 2, the φ and graph-size sweeps of chapter 3, and
the regime × architecture runs of chapter 5. For each milestone, the first evaluated step
where it holds, and what reaching it cost:

- **memorize**: `train_inferred` accuracy ≥ 0.99 (the trained two-hop facts);
- **generalize_id**: `test_inferred_iid` ≥ 0.9 (held-out in-distribution compositions);
- **generalize_ood**: `test_inferred_ood` ≥ 0.5 (compositions of facts never composed in training);
- **circuit**: the bridge entity is top-1 at the r1 position at one fixed stage for at least
  half the held-out queries (the strict rule of chapter 4; OOD queries for chapter 5's runs).

FLOPs are estimated from the model's shape (6 × parameters per token plus attention and
unembedding); seconds are this machine's wall time and vary from machine to machine.
An empty cell means the milestone was never reached within the run."""),
    code("""costs = verdict.ledger(book)
cols = ["chapter", "run", "regime", "phi", "arch", "seed", "train_examples", "steps_run",
        "memorize_step", "generalize_id_step", "generalize_ood_step", "circuit_step"]
costs[cols]"""),
    code("""flops = ["memorize_flops", "generalize_id_flops", "circuit_flops"]
costs[["chapter", "run", *flops, "generalize_id_examples"]].astype({c: float for c in flops})"""),
    code("""costs[["chapter", "run", "memorize_seconds", "generalize_id_seconds"]].round(1)""",
         ["nbval-ignore-output"]),
    new_markdown_cell("""### Data or compute?

The trade-off the study points at: more inferred facts per atomic fact (a larger φ) or more
augmentation means a larger training set, but fewer steps before generalization. Each point
is a run that generalized; its height is the compute it spent to get there (log scale).
Click a legend entry to pick out one chapter's runs."""),
    code("""verdict.tradeoff_chart(costs, "generalize_id", "flops")"""),
    new_markdown_cell("""## The scorecard

For Wang et al.'s main findings and each of the study's three claims: what the paper
found, what this book measured at this preset, and the verdict of the rule beside it.
"Does not replicate at this scale" is a finding about this scale, not about the paper."""),
    code("""numbers = verdict.claim_numbers(book)
card = verdict.scorecard(numbers)
card[["claim", "source", "study", "this book", "verdict"]]"""),
    code("""verdict.scorecard_chart(card)"""),
    new_markdown_cell("""The rules, exactly as the code applies them, and the runs each verdict comes from
(their ids name them in the run store; `grokbook runs ls` lists them):"""),
    code("""pd.set_option("display.max_colwidth", None)
card[["claim", "rule", "runs"]]"""),
    new_markdown_cell("""## Is waiting for grokking worthwhile?

The answer below is assembled from the scorecard and the ledger above, so it changes when
the runs change."""),
    code("""Markdown(verdict.describe(card, costs))"""),
    new_markdown_cell("""## What this book measured that neither paper did

- **Causal tracing on the recursive model** (chapter 5): the study read the TRM only with
  the logit lens; here its states are patched like the transformer's layers.
- **A strict bridge rule** beside the study's lenient one (chapters 4 and 5): the bridge
  must be top-1 at the r1 position at one fixed stage, not at any stage and any position,
  and a control with a wrong bridge shows how often the lenient rule fires by chance.
- **Transfer with hundreds of probes per kind** (chapter 6), where the study's mixed
  categories held 16-36 queries.

## Limits of this reproduction

- **Scale.** The `cpu` preset uses a graph of a hundred entities, a TRM with one
  64-wide block and ten thousand-odd steps; the papers use 2,000 entities, GPT-2-sized models and
  1.5M steps. Phenomena that need long training (the study's fake grokking took hundreds
  of thousands of steps) may not appear here; a verdict says "not measured"
  when a run was too short to see it.
- **Architectures.** The recursive model is TRM-style and CPU-sized (see chapter 5), not
  the study's 1536-wide model trained in bf16 for days.
- **Seeds.** Chapter 3 uses several seeds per point; chapters 4-6 use one run each.

The published numbers, stored once in `grokbook.chapters.study` with their sources:"""),
    code("""study.REGIME_NUMBERS"""),
    code("""study.TRANSFER_NUMBERS"""),
    new_markdown_cell("""## Larger presets

Results of the `gpu` or `paper` preset, when someone runs `grokbook book --preset gpu` on a
GPU and commits the executed notebooks under `results/<preset>/`, are shown here beside the
scorecard above (see the README)."""),
    code("""verdict.other_scorecards("../results")"""),
    code("""verdict.publish(card)  # machine-readable copy of this scorecard, for other presets' books""",
         ["remove-cell"]),
]
nb = new_notebook(cells=cells, metadata={"kernelspec": {"display_name": "Python 3",
                                                        "language": "python", "name": "python3"}})
for i, c in enumerate(nb.cells):
    c["id"] = f"c{i:02d}"
nbformat.write(nb, "book/07_verdict.ipynb")
print("wrote book/07_verdict.ipynb")
