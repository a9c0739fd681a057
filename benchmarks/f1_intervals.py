"""How often does an F1's 95% interval hold the true F1? Each image of a test set is a true positive, a mistake
(a false positive or negative) or a true negative, with chances that give the true F1 (2a / (2a + b)); F1 and both
intervals depend on the counts of the first two alone, so every possible test set is weighed by its multinomial
chance and the coverage is exact, not drawn. Two intervals: the tool's (evaluate/metrics.py: f1_interval, Wilson's
interval of the true positives' share of the images positive or called so, mapped to F1) and the delta method's
normal interval (F1 +- z sd, the variance 4 tp b (tp + b) / (2 tp + b)^4 from the counts).

    python benchmarks/f1_intervals.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import multinomial, norm

from common import number, record

from defect_tf.evaluate.metrics import INTERVAL_LEVEL, f1_interval

# (images, true positives' chance, mistakes' chance, what such a test set is)
CASES = ((482, 273 / 482, 59 / 482, "the localiser's decision on the magnetic tiles' test split"),
         (202, 10 / 202, 42 / 202, "its 12 frays and 190 intact photos"),
         (144, 61 / 144, 1 / 144, "the demo's test split (scratch), one mistake"),
         (20, 0.4, 0.02, "10 labelled photos of each kind"))


def delta_interval(tp: int, mistakes: int, level: float = INTERVAL_LEVEL) -> tuple[float, float]:
    """The delta method's normal interval of F1 = 2 tp / (2 tp + mistakes), clipped to 0-1."""
    f1 = 2 * tp / (2 * tp + mistakes)
    spread = np.sqrt(4 * tp * mistakes * (tp + mistakes) / (2 * tp + mistakes) ** 4)
    z = norm.ppf((1 + level) / 2)
    return max(f1 - z * spread, 0.0), min(f1 + z * spread, 1.0)


def coverage(images: int, found: float, wrong: float) -> dict:
    """Per interval: its exact chance of holding the true F1, and its expected width (test sets with no image
    positive or called so have no F1 and count as a miss)."""
    true_f1 = 2 * found / (2 * found + wrong)
    counts = np.array([(tp, m, images - tp - m) for tp in range(images + 1) for m in range(images - tp + 1)])
    chances = multinomial.pmf(counts, images, [found, wrong, 1 - found - wrong])
    result = {}
    for name, interval in (("tool", lambda tp, m: f1_interval(tp, m, 0)), ("delta", delta_interval)):
        held = width = 0.0
        for (tp, mistakes, _), chance in zip(counts, chances):
            if tp + mistakes and chance > 0:
                low, high = interval(int(tp), int(mistakes))
                held += chance * (low <= true_f1 <= high)
                width += chance * (high - low)
        result[name] = {"held": float(held), "width": float(width)}
    return {"true_f1": true_f1, **result}


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    started, results, rows = time.time(), {}, []
    for images, found, wrong, what in CASES:
        results[what] = figures = coverage(images, found, wrong)
        rows.append(f"| {what} | {number(figures['true_f1'])} | {images} | "
                    + " | ".join(f"{figures[m]['held']:.1%} ({number(figures[m]['width'])})" for m in ("tool", "delta"))
                    + " |")
        print(rows[-1], flush=True)
    markdown = ("Every possible test set of each case weighed by its chance (exact): the chance that the 95% "
                "interval holds the true F1 (its expected width):\n\n"
                "| case | true F1 | images | the tool's interval | delta method |\n"
                "|---|---:|---:|---:|---:|\n" + "\n".join(rows) + f"\n\n{time.time() - started:.0f} s.")
    print(markdown)
    record("f1_intervals", "How often an F1's 95% interval holds the true F1 (exact, over every possible test set)",
           markdown, {"cases": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
