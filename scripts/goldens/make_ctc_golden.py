#!/usr/bin/env python3
"""Golden CTC losses and gradients for engine/ops (tests/ctc.rs), computed with PyTorch's
torch.nn.functional.ctc_loss.

Setup:  python3 -m venv /tmp/venv-llm && /tmp/venv-llm/bin/pip install torch numpy
Run:    /tmp/venv-llm/bin/python scripts/goldens/make_ctc_golden.py
Output: scripts/goldens/ctc_golden.json: per case the logits [T, C], the labels, the blank, the
        loss -ln p(labels | logits) (reduction "sum" over one sequence) and the gradient of that
        loss with respect to the logits, taken through log_softmax (PyTorch's own ctc backward is
        only defined up to that softmax, so the logits are the comparable quantity).
"""
import json
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))

CASES = [
    # (name, frames, classes, labels, blank)
    ("short_no_repeats", 6, 5, [1, 3, 2], 0),
    ("repeats_need_blanks", 9, 4, [2, 2, 3, 3, 3], 0),
    ("tight_length", 4, 6, [5, 1, 5, 2], 0),
    ("blank_last_class", 20, 12, [0, 4, 4, 7, 1, 9, 3], 11),
    ("long_sparse", 60, 40, [7, 13, 13, 2, 39, 21, 5, 5, 30, 11, 8, 1], 0),
]


def main():
    torch.manual_seed(20261126)
    cases = []
    for name, t, c, labels, blank in CASES:
        # Rounded to the 6 decimals the JSON keeps, so the goldens are exactly those of the
        # logits the Rust test reads.
        stored = [round(float(v), 6) for v in (torch.randn(t * c, dtype=torch.float64) * 2.0)]
        logits = torch.tensor(stored, dtype=torch.float64).reshape(t, c).requires_grad_(True)
        loss = torch.nn.functional.ctc_loss(
            torch.log_softmax(logits, dim=-1).unsqueeze(1),
            torch.tensor([labels]),
            torch.tensor([t]),
            torch.tensor([len(labels)]),
            blank=blank,
            reduction="sum",
        )
        loss.backward()
        cases.append(
            {
                "name": name,
                "frames": t,
                "classes": c,
                "labels": labels,
                "blank": blank,
                "logits": stored,
                "loss": float(loss),
                "grad_logits": [float(v) for v in logits.grad.flatten()],
            }
        )
    meta = {"generator": "torch.nn.functional.ctc_loss", "torch": torch.__version__}
    with open(os.path.join(HERE, "ctc_golden.json"), "w") as f:
        json.dump({"meta": meta, "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
