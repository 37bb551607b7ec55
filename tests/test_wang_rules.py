"""Wang's rules over seeds reach every one of their classes on made-up numbers."""
import pandas as pd
import pytest

from grokbook.analysis import seeds as sd
from grokbook.analysis import wang as w
from grokbook.analysis.definitions import NOT_MEASURED, NOT_REPLICATED, PARTLY, REPLICATES


def _table(key, rows, budget=10_000):
    return pd.DataFrame([{key: k, "seed": s, "grokked_step": g, "budget": budget}
                         for k, s, g in rows])


def test_a_seed_is_told_apart_by_what_it_did():
    assert w.seed_class(1000, 5000, 0.1) == w.WAITED
    assert w.seed_class(1000, 1200, 0.5) == w.NO_WAIT
    assert w.seed_class(1000, None, 0.1, rising=True) == w.RISING
    assert w.seed_class(1000, None, 0.1, rising=False) == w.FLAT
    assert w.seed_class(None, None, None) == w.NEVER


def test_grokking_rule_reaches_every_class():
    W, N, R, F = w.WAITED, w.NO_WAIT, w.RISING, w.FLAT
    assert w.grokking_verdict([W] * 8)[0] == REPLICATES
    assert w.grokking_verdict([W] * 6 + [N, F])[0] == PARTLY        # 6/8: interval holds 1/2
    assert w.grokking_verdict([N] * 7 + [W])[0] == NOT_REPLICATED
    assert w.grokking_verdict([W, W])[0] == NOT_MEASURED            # too few seeds
    v, why, numbers = w.grokking_verdict([W, W, R, R, w.NEVER])
    assert v == NOT_MEASURED and "censored" in why                  # slow is not never
    assert numbers["classes"] == {W: 2, R: 2, w.NEVER: 1}


def test_ood_rule_reaches_every_class():
    assert w.ood_verdict([0.01, 0.02, 0.0, 0.03])[0] == REPLICATES
    assert w.ood_verdict([0.5, 0.6, 0.55])[0] == NOT_REPLICATED
    assert w.ood_verdict([0.05, 0.2, 0.1])[0] == PARTLY
    assert w.ood_verdict([0.0, 0.0])[0] == NOT_MEASURED
    v, why, n = w.ood_verdict([0.01, 0.02, 0.0, 0.03])
    assert n["lo"] <= n["mean"] <= n["hi"] and "4 seeds" in why


def _sweep(key, steps_by_value, budget=10_000):
    return _table(key, [(v, s, g) for v, gs in steps_by_value.items()
                        for s, g in enumerate(gs)], budget)


def test_phi_rule_reaches_every_class():
    falls = {3.6: [9000, 8800, 9100], 5.4: [6000, 6200, 5900], 7.2: [4500, 4400, 4600],
             9.0: [3500, 3600, 3400]}
    assert w.phi_verdict(_sweep("data.phi", falls))[0] == REPLICATES
    flat = {3.6: [5000, 5100, 4900], 5.4: [5050, 4950, 5000], 7.2: [5000, 5020, 4980],
            9.0: [4990, 5010, 5000]}
    assert w.phi_verdict(_sweep("data.phi", flat))[0] == NOT_REPLICATED
    noisy = {3.6: [9000, 1000, 5000], 5.4: [1000, 9000, 3000], 7.2: [8000, 1200, 2000],
             9.0: [1500, 900, 8000]}
    v, why, _ = w.phi_verdict(_sweep("data.phi", noisy))
    assert v == NOT_MEASURED and "disagree" in why
    three = {k: falls[k] for k in (3.6, 5.4, 7.2)}
    assert w.phi_verdict(_sweep("data.phi", three))[0] == NOT_MEASURED   # too few values
    censored = {**falls, 9.0: [None, None, 3400]}
    assert "did not grok" in w.phi_verdict(_sweep("data.phi", censored))[1]


def test_size_rule_reaches_every_class_and_noise_cannot_make_it_replicate():
    flat = {50: [3000, 3100, 2900], 100: [3050, 2950, 3000], 200: [3000, 3020, 2980]}
    assert w.size_verdict(_sweep("data.n_entities", flat))[0] == REPLICATES
    grows = {50: [2000, 2100, 1900], 100: [4000, 4100, 3900], 200: [8000, 8200, 7800]}
    assert w.size_verdict(_sweep("data.n_entities", grows))[0] == NOT_REPLICATED
    noisy = {50: [1000, 9000, 3000], 100: [9000, 1000, 5000], 200: [2000, 8000, 1000]}
    v, why, _ = w.size_verdict(_sweep("data.n_entities", noisy))
    assert v == NOT_MEASURED and "too wide" in why                 # noise is not sameness
    two = {50: flat[50], 100: flat[100]}
    assert w.size_verdict(_sweep("data.n_entities", two))[0] == NOT_MEASURED


def test_rule_texts_are_short_and_name_their_thresholds():
    for key, text in w.RULE_TEXT.items():
        assert len(text) <= 6 * 90, key            # a reader can hold it: <= 6 lines
    assert str(w.SLOPE_X) in w.RULE_TEXT["wang_size"]
    assert str(w.OOD_LOW) in w.RULE_TEXT["wang_ood"]


def test_the_shared_precondition():
    assert sd.not_measured(2) and "needs 3" in sd.not_measured(2)
    assert sd.not_measured(4, censored=3) and sd.not_measured(4, censored=2) is None
    assert sd.not_measured(5) is None
    share, lo, hi = sd.share_interval(8, 8)
    assert share == 1 and lo > 0.6 and hi == 1
    s, lo, hi = sd.slope_interval([1, 1, 2, 2, 4, 4], [8, 8, 4, 4, 2, 2])
    assert s == pytest.approx(-1.0) and lo == pytest.approx(-1.0) and hi == pytest.approx(-1.0)
