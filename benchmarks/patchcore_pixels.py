"""Where PatchCore's pixel AUROC is lost on the magnetic tiles, and whether averaging the maps of two input sizes
wins it back: on the localiser's validation photos only (76 intact, 100 labelled defects), with the fits of
`benchmarks/patchcore_size.py` (read back from the same `--work`, or fitted here).

Pixel AUROC pools every pixel of every photo. Here the same defect pixels are also ranked against two halves of
the other pixels: the pixels of intact photos, and the defect-free pixels of the defective photos themselves. The
first says whether the maps tell a defect from an intact tile; the second whether they find the defect within its
own photo. Then the maps of several sizes, each already measured against intact photos at the same place (so
they share a scale), are averaged pixel by pixel and scored as one map.

    python benchmarks/patchcore_pixels.py [--sizes 128 160 192 256] [--work DIR]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

import numpy as np
from patchcore_size import add_size_options, fitted_sizes

from common import number, record, run

from defect_tf.anomaly.base import TOP_SHARE, top_mean
from defect_tf.anomaly.data import AnomalySet
from defect_tf.anomaly.evaluation import true_mask
from defect_tf.anomaly.images import read_photo
from defect_tf.anomaly.store import load_localizer
from defect_tf.evaluate.localisation import image_auroc, pixel_rankings
from defect_tf.progress_bar import progress_bar

PARTS = ("pixel_auroc", "intact_photos", "own_photos")


def pixel_auroc_parts(maps: list[np.ndarray], masks: list[np.ndarray], defective: list[bool]) -> dict[str, float]:
    """Pixel AUROC over every pixel, and its two halves (evaluate/localisation.py `pixel_rankings`)."""
    split = pixel_rankings(maps, masks, defective)
    return {"pixel_auroc": split.pop("pooled"), **split}


def averaged(maps_by_size: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Per photo, the pixel-wise mean of its maps at several sizes (each at the photo's own size)."""
    return [np.mean(np.stack(per_photo), axis=0) for per_photo in zip(*maps_by_size)]


def figures(maps: list[np.ndarray], masks: list[np.ndarray], labels: list[bool], kinds: list[str | None]) -> dict:
    """Image AUROC (the tool's top-share score), the pixel AUROC parts, and the parts per defect type (each type's
    photos with the intact ones)."""
    result = {"image_auroc": image_auroc(labels, [top_mean(m, TOP_SHARE) for m in maps]),
              **pixel_auroc_parts(maps, masks, labels), "per_type": {}}
    for kind in sorted({k for k, label in zip(kinds, labels) if label and k}):
        chosen = [i for i, label in enumerate(labels) if not label or kinds[i] == kind]
        result["per_type"][kind] = pixel_auroc_parts([maps[i] for i in chosen], [masks[i] for i in chosen],
                                                     [labels[i] for i in chosen])
    return result


def validation_maps(anomaly_set: AnomalySet, rows: list[int], fits: dict) -> tuple[dict, list, dict]:
    """Each size's maps of the validation photos (size -> list), the photos' masks, and ms per photo per size."""
    photos = [read_photo(anomaly_set.path(row)) for row in rows]
    masks = [true_mask(anomaly_set, row, photo.shape[:2]) for row, photo in zip(rows, photos)]
    maps, ms = {}, {}
    for size, (output, _) in fits.items():
        model = load_localizer(output).model
        started = time.perf_counter()
        maps[size] = [model.anomaly_map(photo) for photo in progress_bar(photos, desc=f"maps at {size} px",
                                                                         unit="photo", leave=False)]
        ms[size] = 1000 * (time.perf_counter() - started) / len(photos)
    return maps, masks, ms


def part_cells(result: dict) -> str:
    return " / ".join(number(result[part]) for part in PARTS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_options(parser)
    args = parser.parse_args(argv)
    anomaly_set, rows, fits = fitted_sizes(args)
    maps, masks, ms = validation_maps(anomaly_set, rows, fits)
    if any(mask is None for mask in masks):
        raise SystemExit("every labelled defect of the validation photos needs its mask")
    labels = [bool(anomaly_set.defective[row]) for row in rows]
    kinds = [anomaly_set.types.get(anomaly_set.images[row]) for row in rows]
    sizes = list(maps)
    combos = [c for k in range(1, len(sizes) + 1) for c in itertools.combinations(sizes, k)]
    results = {" + ".join(f"{s} px" for s in combo): {**figures(averaged([maps[s] for s in combo]), masks, labels, kinds),
                                                      "ms_per_photo": sum(ms[s] for s in combo)}
               for combo in combos}
    singles = [f"{s} px" for s in sizes]
    type_names = list(results[singles[0]]["per_type"])
    parts = "pixel AUROC pooled / against intact photos / against their own clean pixels"
    by_size = ["| side | " + parts + " | " + " | ".join(type_names) + " |", "|---|---:|" + "---:|" * len(type_names)]
    by_size += [f"| {name} | {part_cells(results[name])} | "
                + " | ".join(part_cells(results[name]["per_type"][kind]) for kind in type_names) + " |"
                for name in singles]
    fused = ["| maps averaged | ms / photo | image AUROC | " + parts + " | uneven: " + parts + " |",
             "|---|---:|---:|---:|---:|"]
    fused += [f"| {name} | {result['ms_per_photo']:.0f} | {number(result['image_auroc'])} | {part_cells(result)} | "
              f"{part_cells(result['per_type']['uneven']) if 'uneven' in result['per_type'] else '-'} |"
              for name, result in results.items()]
    defective = sum(labels)
    markdown = (f"PatchCore (Lite0 features, memory bank {args.coreset_size:,} rows), scored on the localiser's "
                f"validation photos ({len(rows) - defective} intact, {defective} labelled defects), never on the "
                f"test split. The defect pixels ranked against every other pixel (pooled: the report's pixel "
                f"AUROC), against the pixels of intact photos only, and against the defect-free pixels of the "
                f"defective photos only; per defect type, that type's photos with the intact ones.\n\n"
                + "\n".join(by_size) + "\n\nThe maps of several sizes averaged pixel by pixel (ms per photo: the "
                "sum of the sizes' own):\n\n" + "\n".join(fused))
    print(markdown)
    record("patchcore_pixels", "Where PatchCore's pixel AUROC is lost, and maps of several sizes averaged "
           "(magnetic tiles, validation photos)", markdown, results)
    return 0


if __name__ == "__main__":
    sys.exit(run(lambda: main()))
