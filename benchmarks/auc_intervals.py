"""How often does a ROC-AUC's 95% interval hold the true AUC? Scores are drawn from two normal distributions a
shift apart, so the true AUC is known; each case is drawn `--draws` times (seeded) with the counts of a real test
set, and scored by the tool's interval (evaluate/metrics.py: roc_auc_interval, a score-type interval on Hanley &
McNeil's variance) and by a percentile bootstrap over the images (resampled within positives and negatives, as the
reports did before). A 95% interval should hold the true AUC in at least 95% of the draws.

    python benchmarks/auc_intervals.py [--draws 400] [--rounds 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import norm

from common import number, record

from defect_tf.evaluate.metrics import INTERVAL_LEVEL, roc_auc_interval

# (true AUC, positives, negatives, what such a test set is)
CASES = ((0.95, 292, 190, "the magnetic tiles' test split"), (0.98, 12, 190, "its 12 frays against its intact photos"),
         (0.995, 61, 83, "the demo's test split (scratch)"), (0.9, 10, 10, "10 labelled photos of each kind"))


def bootstrap_interval(labels: np.ndarray, scores: np.ndarray, rounds: int, rng: np.random.Generator,
                       level: float = INTERVAL_LEVEL) -> tuple[float, float]:
    """The percentile interval of the AUCs of `rounds` resamples drawn within each kind. A resample only changes
    how often each image is drawn, so each positive's wins are read off the running count of drawn negatives in
    score order (ties count half)."""
    positive, negative = scores[labels == 1], np.sort(scores[labels == 0])
    below, at_or_below = (np.searchsorted(negative, positive, side) for side in ("left", "right"))
    drawn_p = rng.multinomial(len(positive), np.full(len(positive), 1 / len(positive)), size=rounds)
    drawn_n = rng.multinomial(len(negative), np.full(len(negative), 1 / len(negative)), size=rounds)
    running = np.concatenate([np.zeros((rounds, 1)), np.cumsum(drawn_n, axis=1)], axis=1)
    wins = running[:, below] + 0.5 * (running[:, at_or_below] - running[:, below])
    aurocs = (drawn_p * wins).sum(1) / (len(positive) * len(negative))
    low, high = np.quantile(aurocs, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def coverage(true_auc: float, positives: int, negatives: int, args: argparse.Namespace) -> dict:
    """Per method: the share of draws whose interval holds `true_auc`, and the interval's mean width."""
    rng = np.random.default_rng(args.seed)
    shift = np.sqrt(2) * norm.ppf(true_auc)  # P(X > Y) for X ~ N(shift, 1), Y ~ N(0, 1)
    labels = np.r_[np.ones(positives, int), np.zeros(negatives, int)]
    found = {"tool": [], "bootstrap": []}
    for _ in range(args.draws):
        scores = np.r_[rng.normal(shift, 1, positives), rng.normal(0, 1, negatives)]
        found["tool"].append(roc_auc_interval(labels, scores))
        found["bootstrap"].append(bootstrap_interval(labels, scores, args.rounds, rng))
    return {method: {"held": float(np.mean([low <= true_auc <= high for low, high in intervals])),
                     "width": float(np.mean([high - low for low, high in intervals]))}
            for method, intervals in found.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=400, help="test sets drawn per case")
    parser.add_argument("--rounds", type=int, default=2000, help="the bootstrap's resamples per test set")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started, results, rows = time.time(), {}, []
    for true_auc, positives, negatives, what in CASES:
        results[what] = found = coverage(true_auc, positives, negatives, args)
        rows.append(f"| {what} | {true_auc:g} | {positives} / {negatives} | "
                    + " | ".join(f"{found[m]['held']:.0%} ({number(found[m]['width'])})" for m in ("tool", "bootstrap"))
                    + " |")
        print(rows[-1], flush=True)
    markdown = (f"Each case drawn {args.draws} times (seed {args.seed}): scores of the positives and negatives from "
                "two normal distributions a shift apart that gives the true AUC. Share of the draws whose 95% "
                "interval holds the true AUC (mean width):\n\n"
                "| case | true AUC | positives / negatives | the tool's interval | percentile bootstrap |\n"
                "|---|---:|---:|---:|---:|\n" + "\n".join(rows)
                + f"\n\nThe bootstrap: {args.rounds} resamples within each kind. {time.time() - started:.0f} s.")
    print(markdown)
    record("auc_intervals", "How often a ROC-AUC's 95% interval holds the true AUC (simulated test sets)", markdown,
           {"settings": vars(args), "cases": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
