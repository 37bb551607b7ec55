"""Wang's three rules reach every verdict class on made-up numbers."""
import pandas as pd

from grokbook.analysis import wang as w
from grokbook.analysis.definitions import VERDICTS


def _table(key, rows, budget=10_000):
    return pd.DataFrame([{key: k, "seed": s, "grokked_step": g, "budget": budget}
                         for k, s, g in rows])


def test_grokking_rule_reaches_every_class():
    got = {w.grokking_verdict(1000, 5000, 0.1)[0], w.grokking_verdict(1000, 5000, 0.5)[0],
           w.grokking_verdict(1000, 1000, 0.95)[0], w.grokking_verdict(None, None, None)[0]}
    assert got == set(VERDICTS)
    assert w.grokking_verdict(1000, None, 0.1)[0] == w.NOT_MEASURED  # too short, not refuted


def test_seeded_grokking_rule_reads_the_other_seeds():
    ok, short, early = (1000, 5000, 0.1), (1000, None, 0.1), (1000, 5000, 0.5)
    seeded = w.seeded_grokking_verdict
    assert seeded(ok, [ok, ok, short])[0] == w.REPLICATES           # 2 of 3 others
    assert seeded(ok, [ok, short])[0] == w.REPLICATES               # half of them
    v, why = seeded(ok, [short, short, early])
    assert v == w.PARTLY and "0 of 3" in why                         # the subject's luck
    assert seeded(ok, [])[0] == w.NOT_MEASURED                       # nothing to test it on
    assert seeded(short, [ok, ok])[0] == w.NOT_MEASURED              # the subject's own class
    assert seeded(early, [ok])[0] == w.PARTLY
    assert seeded((1000, 1000, 0.95), [ok])[0] == w.NOT_REPLICATED
    assert f"{w.SEED_SHARE:.0%}" in w.RULE_TEXT["wang_grokking"]


def _phi(steps_by_phi):
    return _table("data.phi", [(phi, s, g) for phi, gs in steps_by_phi.items()
                               for s, g in enumerate(gs)])


def test_phi_rule_reaches_every_class():
    falls = {3.6: [9000, 8800], 5.4: [7000, 6800], 7.2: [5000, 5200], 9.0: [3000, 3100]}
    assert w.phi_verdict(_phi(falls))[0] == w.REPLICATES
    overlap = {3.6: [9000, 4000], 5.4: [7000, 6800], 7.2: [5000, 5200], 9.0: [3000, 4500]}
    assert w.phi_verdict(_phi(overlap))[0] == w.PARTLY
    rises = {3.6: [3000, 3100], 5.4: [5000, 5200], 7.2: [7000, 6800], 9.0: [9000, 8800]}
    assert w.phi_verdict(_phi(rises))[0] == w.NOT_REPLICATED
    three = {5.4: [7000, 6800], 7.2: [5000, 5200], 9.0: [3000, 3100]}
    assert w.phi_verdict(_phi(three))[0] == w.NOT_MEASURED
    censored = {3.6: [None, None], 5.4: [None, 6800], 7.2: [None, 5200], 9.0: [3000, 3100]}
    assert w.phi_verdict(_phi(censored))[0] == w.NOT_MEASURED


def _sizes(steps_by_size):
    return _table("data.n_entities", [(n, s, g) for n, gs in steps_by_size.items()
                                      for s, g in enumerate(gs)])


def test_size_rule_reaches_every_class():
    same = {100: [5000, 6000], 150: [5500, 5200], 200: [5900, 5100]}
    assert w.size_verdict(_sizes(same))[0] == w.REPLICATES
    grows = {100: [3000, 3100], 150: [5000, 5100], 200: [8000, 8100]}
    assert w.size_verdict(_sizes(grows))[0] == w.NOT_REPLICATED
    zigzag = {100: [3000, 3100], 150: [8000, 8100], 200: [5000, 5100]}
    assert w.size_verdict(_sizes(zigzag))[0] == w.PARTLY
    assert w.size_verdict(_sizes({100: [3000, 3100], 150: [5000, 5100]}))[0] == w.NOT_MEASURED
    late = {100: [3000, 3100], 150: [5000, 5100], 200: [None, 8100]}
    assert w.size_verdict(_sizes(late))[0] == w.NOT_MEASURED


def test_rule_texts_state_the_thresholds_they_use():
    assert str(w.BEFORE_AT) in w.RULE_TEXT["wang_grokking"]
    assert str(w.MIN_VALUES) in w.RULE_TEXT["wang_phi"]
    assert str(w.MIN_SIZES) in w.RULE_TEXT["wang_size"]
