"""The published numbers this book compares against, stored once, each with its source.

He et al. 2026 = K. He, M. Zhang, P. Wu, X. Du, Z. Chen, "Is Grokking Worthwhile?
Functional Analysis and Transferability of Generalization Circuits in Transformers",
arXiv 2601.09049 (Findings of ACL 2026). Wang et al. 2024 = B. Wang, X. Yue, Y. Su,
H. Sun, "Grokked Transformers are Implicit Reasoners", arXiv 2405.15071 (NeurIPS 2024).
Numbers are as gathered in the project's reference notes; steps are optimizer steps at
paper scale (2000 entities, 200 relations, batch 512).
"""
from __future__ import annotations

import pandas as pd

HE = "He et al. 2026 (arXiv 2601.09049)"
WANG = "Wang et al. 2024 (arXiv 2405.15071)"

CITATIONS = {
    HE: "K. He, M. Zhang, P. Wu, X. Du, Z. Chen. Is Grokking Worthwhile? Functional Analysis "
        "and Transferability of Generalization Circuits in Transformers. arXiv:2601.09049, "
        "Findings of ACL 2026.",
    WANG: "B. Wang, X. Yue, Y. Su, H. Sun. Grokked Transformers are Implicit Reasoners: A "
          "Mechanistic Journey to the Edge of Generalization. arXiv:2405.15071, NeurIPS 2024.",
}

# TRM runs of the study: first step at which a curve passes a threshold (None = never).
REGIME_NUMBERS = pd.DataFrame([
    # regime, train>0.9, bridge>0.5, bridge>0.9, ood>0.5, ood>0.9, final bridge, final ood
    ("natural", 49_000, 219_000, 311_000, 396_000, None, 1.00, 0.68),
    ("both_full", 37_000, 52_000, 60_000, 37_000, 37_000, 1.00, 1.00),
    ("hop1_only", 44_000, 58_000, 73_000, 744_000, 1_060_000, 1.00, 0.22),
    ("hop2_only", 44_000, 647_000, None, 291_000, 677_000, 0.65, 0.97),
], columns=["regime", "train_gt_0.9", "bridge_gt_0.5", "bridge_gt_0.9", "ood_gt_0.5",
            "ood_gt_0.9", "final_bridge", "final_ood"]).assign(source=HE)

# Transfer after grokking (first ~39k fine-tuning steps), best accuracy per probe kind.
TRANSFER_NUMBERS = pd.DataFrame([
    ("new_atomic", 1.0, None, "reaches ~1.0 within 2-4k steps"),
    ("new_hop1_old_hop2", 1.0, None, "new fact as hop 1 composes"),
    ("old_hop1_new_hop2", 0.11, None, "stays near 0 (at most 0.11)"),
    ("new_new", 0.036, 0.98, "at most 0.036 although the bridge is found in 97-99%"),
], columns=["probe", "study_accuracy", "study_bridge_found", "study_note"]).assign(source=HE)

# Findings stated as data: what each claim predicts, for the scorecard's rules.
CLAIMS = {
    "wang_grokking": (WANG, "ID accuracy on held-out two-hop queries reaches ~100% only "
                            "through grokking, long after training accuracy saturates"),
    "wang_ood": (WANG, "OOD two-hop accuracy stays near 0 for the standard transformer"),
    "wang_phi": (WANG, "the speed of grokking follows phi (more inferred facts per atomic "
                       "fact groks sooner), not the size of the graph"),
    "claim1_same_path": (HE, "before and after grokking, ID queries use the same inference "
                             "path"),
    "claim2_fake_grokking": (HE, "accuracy on unseen queries and the bridge-resolving path "
                                 "can come apart (hop-2-only: OOD 0.97 with bridge ~0.65)"),
    "claim3_transfer": (HE, "a grokked circuit composes a new fact as hop 1, not as hop 2; "
                            "new+new fails"),
}

# Cost at paper scale (estimates from the reference notes).
PAPER_COST = {"wang_gpt2_steps": 1_500_000, "wang_gpt2_tflop_per_step": 3.0,
              "wang_gpt2_gpu_hours": (10, 15), "source": WANG}
