"""A photo's score, the mean of its map's top share, measured on the magnetic tiles (`../shared/data/anomaly`).

The localiser scores a photo by the mean of the highest 1% of its map (anomaly/base.py `TOP_SHARE`), a share first
chosen on a throwaway sample. Here PatchCore is fitted as `benchmarks/anomaly.py` fits it (or read back from the
same `--work`), each photo's score map is computed once at the photo's own size, and every share in `--shares` is
scored from it (0: the map's maximum): image AUROC with its interval, overall and per defect type. `--split val`
(the default) scores the localiser's validation photos (intact ones and the 100 labelled defects), on which a
share is chosen; `--split test` scores the test split, once the choice is made. `--less-median` also scores each
share less the median of the photo's own map, so a shift of a whole photo's map cancels and a local peak stays.

    python benchmarks/patchcore_score.py [--split val|test] [--shares 0 0.001 0.003 0.01 0.03 0.1] [--less-median]
        [--work DIR]
"""

from __future__ import annotations

import argparse
import itertools
import sys

import numpy as np
from patchcore_size import add_size_options, fitted_sizes

from common import number, record, run

from defect_tf.anomaly.base import TOP_SHARE, top_mean
from defect_tf.anomaly.images import model_input, read_photo
from defect_tf.anomaly.maps import resize_map
from defect_tf.anomaly.store import load_localizer
from defect_tf.evaluate.localisation import image_auroc
from defect_tf.evaluate.metrics import roc_auc_interval
from defect_tf.progress_bar import progress_bar

SHARES = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1)


def score_maps(model, paths: list) -> list[np.ndarray]:
    """Each photo's score map (the map its image score is taken from) at the photo's own size."""
    maps = []
    for path in progress_bar(paths, desc="score maps", unit="photo", leave=False):
        photo = read_photo(path)
        anomaly_map, score_map = model.raw_maps(model_input(photo, model.image_size))
        maps.append(resize_map(anomaly_map if score_map is None else score_map, photo.shape[:2]))
    return maps


def share_figures(maps: list[np.ndarray], labels: list[bool], kinds: list[str | None],
                  share: float, less_median: bool = False) -> dict:
    """Image AUROC and its interval with the photos scored by the mean of their maps' top `share` (less each map's
    median, with `less_median`), overall and per defect type (that type's photos against every intact one)."""
    scores = [top_mean(m, share) - (float(np.median(m)) if less_median else 0.0) for m in maps]

    def auroc(chosen: list[int]) -> dict:
        chosen_labels, chosen_scores = [labels[i] for i in chosen], [scores[i] for i in chosen]
        low, high = roc_auc_interval(chosen_labels, chosen_scores)
        return {"image_auroc": image_auroc(chosen_labels, chosen_scores), "low": low, "high": high}

    result = {"all": auroc(list(range(len(maps))))}
    for kind in sorted({k for k, label in zip(kinds, labels) if label and k}):
        result[kind] = auroc([i for i, label in enumerate(labels) if not label or kinds[i] == kind])
    return result


def share_name(share: float) -> str:
    return "maximum" if share == 0 else f"top {100 * share:g}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_options(parser)
    parser.set_defaults(sizes=[192])
    parser.add_argument("--split", choices=["val", "test"], default="val")
    parser.add_argument("--shares", type=float, nargs="+", default=list(SHARES))
    parser.add_argument("--less-median", action="store_true",
                        help="also score each share less the median of the photo's own map")
    args = parser.parse_args(argv)
    if any(not 0 <= share <= 1 for share in args.shares):
        raise SystemExit("--shares must lie between 0 and 1")
    anomaly_set, _, fits = fitted_sizes(args)
    rows = anomaly_set.rows(args.split)
    labels = [bool(anomaly_set.defective[row]) for row in rows]
    kinds = [anomaly_set.types.get(anomaly_set.images[row]) for row in rows]
    results = {}
    for size, (output, _) in fits.items():
        print(f"scoring {len(rows)} {args.split} photos at {size} px", flush=True)
        maps = score_maps(load_localizer(output).model, [anomaly_set.path(row) for row in rows])
        for share, less_median in itertools.product(args.shares, [False, True] if args.less_median else [False]):
            label = f"{size} px, {share_name(share)}" + (" less the map's median" if less_median else "")
            results[label] = share_figures(maps, labels, kinds, share, less_median)
    type_names = [k for k in next(iter(results.values())) if k != "all"]
    lines = ["| side, photo's score | image AUROC (interval) | " + " | ".join(type_names) + " |",
             "|---|---:|" + "---:|" * len(type_names)]
    for label, result in results.items():
        overall = result["all"]
        lines.append(f"| {label}{' (the default)' if label.endswith(', ' + share_name(TOP_SHARE)) else ''} | "
                     f"{number(overall['image_auroc'])} ({number(overall['low'])}-{number(overall['high'])}) | "
                     + " | ".join(number(result[kind]["image_auroc"]) for kind in type_names) + " |")
    defective = sum(labels)
    photos = (f"the localiser's validation photos ({len(rows) - defective} intact, {defective} labelled defects)"
              if args.split == "val" else f"the test split ({len(rows) - defective} intact, {defective} defective)")
    markdown = (f"PatchCore (Lite0 features, memory bank {args.coreset_size:,} rows): each photo scored by the mean "
                f"of its score map's top share (at the photo's own size; the maximum: one pixel), on {photos}. "
                f"Image AUROC with its 95% interval; per defect type, that type's photos against the intact ones."
                f"\n\n" + "\n".join(lines))
    print(markdown)
    record(f"patchcore_score_{args.split}" + ("_less_median" if args.less_median else ""), "A photo's score: the share of its map it is taken from (magnetic tiles, "
           + ("validation photos)" if args.split == "val" else "test split)"), markdown, results)
    return 0


if __name__ == "__main__":
    sys.exit(run(lambda: main()))
