"""How often does an average precision's 95% interval hold the true AP? Scores are drawn as in
`benchmarks/auc_intervals.py` (two normal distributions a shift apart, with the counts of real test sets); the true
AP is the integral of precision over recall at that prevalence. Three intervals: the tool's (evaluate/metrics.py:
average_precision_intervals, AP read as a proportion of the positives, Wilson's interval) and Boyd et al. (2013)'s
binomial (normal) and logit intervals.

    python benchmarks/ap_intervals.py [--draws 400]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import norm

from common import number, record

from defect_tf.evaluate.metrics import INTERVAL_LEVEL, average_precision, average_precision_intervals

# (true AUC, positives, negatives, what such a test set is)
CASES = ((0.95, 292, 190, "the magnetic tiles' test split"), (0.98, 12, 190, "its 12 frays against its intact photos"),
         (0.995, 61, 83, "the demo's test split (scratch)"), (0.9, 10, 10, "10 labelled photos of each kind"),
         (0.999, 20, 20, "a near-perfect model, 20 of each"), (0.7, 5, 100, "5 rare positives among 100"))


def true_average_precision(shift: float, prevalence: float) -> float:
    """The AP of scores N(shift, 1) for positives against N(0, 1) for negatives: precision integrated over recall."""
    cut = np.linspace(-10, 15, 200_001)
    recall, false_alarms = norm.sf(cut - shift), norm.sf(cut)
    precision = prevalence * recall / np.maximum(prevalence * recall + (1 - prevalence) * false_alarms, 1e-300)
    return float(np.sum((precision[1:] + precision[:-1]) / 2 * (recall[:-1] - recall[1:])))


def boyd_intervals(ap: float, positives: int) -> dict[str, tuple[float, float]]:
    """Boyd et al.'s binomial interval (AP +- z sqrt(AP (1 - AP) / n)) and logit interval (none at AP 0 or 1)."""
    z = norm.ppf((1 + INTERVAL_LEVEL) / 2)
    half = z * np.sqrt(ap * (1 - ap) / positives)
    if 0 < ap < 1:
        centre, spread = np.log(ap / (1 - ap)), 1 / np.sqrt(positives * ap * (1 - ap))
        logit = tuple(float(1 / (1 + np.exp(-(centre + sign * z * spread)))) for sign in (-1, 1))
    else:
        logit = (float("nan"), float("nan"))
    return {"binomial": (max(ap - half, 0.0), min(ap + half, 1.0)), "logit": logit}


def coverage(true_auc: float, positives: int, negatives: int, draws: int, seed: int) -> dict:
    """Per interval: the share of draws whose interval holds the true AP, and its mean width."""
    rng, shift = np.random.default_rng(seed), np.sqrt(2) * norm.ppf(true_auc)
    truth = true_average_precision(shift, positives / (positives + negatives))
    labels = np.r_[np.ones(positives), np.zeros(negatives)][:, None]
    found = {"tool": [], "binomial": [], "logit": []}
    for _ in range(draws):
        scores = np.r_[rng.normal(shift, 1, positives), rng.normal(0, 1, negatives)][:, None]
        lows, highs = average_precision_intervals(labels, scores)
        found["tool"].append((lows[0], highs[0]))
        for name, interval in boyd_intervals(float(average_precision(labels, scores)[0]), positives).items():
            found[name].append(interval)
    return {"true_ap": truth, **{name: {"held": float(np.mean([low <= truth <= high for low, high in intervals])),
                                        "width": float(np.nanmean([high - low for low, high in intervals]))}
                                 for name, intervals in found.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=400, help="test sets drawn per case")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started, results, rows = time.time(), {}, []
    for true_auc, positives, negatives, what in CASES:
        results[what] = found = coverage(true_auc, positives, negatives, args.draws, args.seed)
        rows.append(f"| {what} | {number(found['true_ap'])} | {positives} / {negatives} | "
                    + " | ".join(f"{found[m]['held']:.0%} ({number(found[m]['width'])})"
                                 for m in ("tool", "binomial", "logit")) + " |")
        print(rows[-1], flush=True)
    markdown = (f"Each case drawn {args.draws} times (seed {args.seed}), scores as in the ROC-AUC's table. Share of "
                "the draws whose 95% interval holds the true AP (mean width; the logit interval has none at AP 1, "
                "which counts as a miss):\n\n"
                "| case | true AP | positives / negatives | the tool's interval | binomial | logit |\n"
                "|---|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + f"\n\n{time.time() - started:.0f} s.")
    print(markdown)
    record("ap_intervals", "How often an average precision's 95% interval holds the true AP (simulated test sets)",
           markdown, {"settings": vars(args), "cases": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
