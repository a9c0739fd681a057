"""Can a few labelled defect masks teach PatchCore what its memory bank misses? On the magnetic tiles the bank
finds every defect type but *uneven* within its own photo (docs/findings.md). Here a linear head (logistic
regression) learns, cell by cell, defect or not from PatchCore's own cell features, the mean of the cells around
(`--context` cells a side), and how a cell differs from the mean of its row and of its column (a band of another
texture differs from the rest of its row or column; no direction is favoured). The head's score is added to the
localiser's map (each cell's distance measured by place, plus `--weight` times the head's score raised to
`--floor`, as the tool adds it) before the map is resized and smoothed as the localiser smooths it.

Two measurements with the fit of `benchmarks/patchcore_size.py` at one size (read back from the same `--work`, or
fitted here): the head trained on the localiser's validation photos (76 intact, 100 labelled defects) and scored
by photo-grouped cross-validation on them (`--folds`), where the settings are chosen; then trained on all of them
and scored once on the test split, which no choice saw. Image AUROC: the mean of a map's top 1%, the tool's rule.

`--unseen-types` asks instead what the head does to a defect type whose masks it never saw: per type, a head
trained on every other type's masks against one trained on all of them, scored on that type's test photos.

    python benchmarks/patchcore_head.py [--sizes 192] [--weight W] [--context C] [--floor=F] [--per-type N]
                                        [--unseen-types] [--work DIR]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from patchcore_size import add_size_options, fitted_sizes

from common import number, record, run

from defect_tf.anomaly.base import TOP_SHARE, top_mean
from defect_tf.anomaly.evaluation import true_mask
from defect_tf.anomaly.images import model_input, read_photo
from defect_tf.anomaly.maps import resize_map
from defect_tf.anomaly.patchcore.head import HEAD_DEFAULTS, DefectHead, cell_mask, held_out_heads, outline_cells
from defect_tf.anomaly.patchcore.maps import PatchCoreMaps, by_place
from defect_tf.anomaly.store import load_localizer
from defect_tf.evaluate.localisation import image_auroc, pixel_rankings, pro_score
from defect_tf.progress_bar import progress_bar


def photo_cells(localizer, anomaly_set, rows: list[int], desc: str) -> list[dict]:
    """Per photo: its PatchCore cells, their distances measured by place, its mask (photo size and on the cells)."""
    model, photos = localizer.model, []
    for row in progress_bar(rows, desc=desc, unit="photo", leave=False):
        photo = read_photo(anomaly_set.path(row))
        inputs = model_input(photo, model.image_size)
        cells = model.patch_features(model.forward(model.network_input(inputs)))
        mask = true_mask(anomaly_set, row, photo.shape[:2])
        mask = np.zeros(photo.shape[:2], bool) if mask is None else mask
        photos.append({"cells": cells.astype(np.float16),
                       "place": by_place(model.cell_distances(cells), model.settings),
                       "mask": mask, "cell_mask": cell_mask(mask, cells.shape[:2]), "input_shape": inputs.shape[:2],
                       "defective": bool(anomaly_set.defective[row]),
                       "kind": anomaly_set.types.get(anomaly_set.images[row])})
    return photos


def outline(place: np.ndarray, head_scores: np.ndarray, args: argparse.Namespace) -> np.ndarray:
    """The outline's cells as the localiser adds the head (`outline_cells`) with this run's weight and floor."""
    return outline_cells(place, head_scores, args.weight, args.floor)


def head_rule(args: argparse.Namespace) -> str:
    """How the head is added, as the tables say it."""
    floor = "" if np.isinf(args.floor) else f", its score raised to {args.floor:g}"
    return f"map + {args.weight:g} x head{floor}"


def whole(args: argparse.Namespace) -> str:
    """The records' suffix for a run that adds the whole head (no floor)."""
    return "_whole" if np.isinf(args.floor) else ""


def finished_maps(photos: list[dict], cell_maps: list[np.ndarray], model: PatchCoreMaps) -> list[np.ndarray]:
    """Each map finished and brought to its photo's size as the localiser does it."""
    return [resize_map(model.finished(c, p["input_shape"]), p["mask"].shape) for c, p in zip(cell_maps, photos)]


def scored(photos: list[dict], maps: list[np.ndarray], chosen: list[int]) -> dict:
    """Image AUROC, pixel AUROC and its halves, PRO over the `chosen` photos."""
    chosen_maps, masks = [maps[i] for i in chosen], [photos[i]["mask"] for i in chosen]
    defective = [photos[i]["defective"] for i in chosen]
    split = pixel_rankings(chosen_maps, masks, defective)
    return {"image_auroc": image_auroc(defective, [top_mean(m, TOP_SHARE) for m in chosen_maps]),
            "pixel_auroc": split["pooled"], "intact_photos": split["intact_photos"],
            "own_photos": split["own_photos"], "pro": pro_score(chosen_maps, masks)}


def with_intact(photos: list[dict], kind: str) -> list[int]:
    """The intact photos and those of one defect type."""
    return [i for i, p in enumerate(photos) if not p["defective"] or p["kind"] == kind]


def figures(photos: list[dict], cell_maps: list[np.ndarray], model: PatchCoreMaps) -> dict:
    """`scored` over every photo; and the same for *uneven* photos with the intact ones."""
    maps = finished_maps(photos, cell_maps, model)
    return {**scored(photos, maps, list(range(len(photos)))),
            "uneven": scored(photos, maps, with_intact(photos, "uneven"))}


def heads(photos: list[dict], args: argparse.Namespace) -> tuple[list[np.ndarray], object]:
    """Each photo's head scores from a head trained on the other folds (folds drawn by photo, seeded), and the
    head trained on every photo (anomaly/patchcore/head.py, as training fits it)."""
    settings = {"dims": args.dims, "context": args.context}
    held_out, final = held_out_heads({i: p["cells"] for i, p in enumerate(photos)},
                                     {i: p["cell_mask"] for i, p in enumerate(photos)}, args.folds, settings, args.seed)
    return [held_out[i].cell_scores(p["cells"]) for i, p in enumerate(photos)], final


def rows_of(name: str, result: dict) -> str:
    cells = [result[key] for key in ("image_auroc", "pixel_auroc", "intact_photos", "own_photos", "pro")]
    uneven = result["uneven"]
    return (f"| {name} | " + " | ".join(number(c) for c in cells) + f" | {number(uneven['own_photos'])} | "
            f"{number(uneven['pixel_auroc'])} |")


def fewer(anomaly_set, rows: list[int], per_type: int, seed: int) -> list[int]:
    """The intact rows, and `per_type` of each defect type's rows (drawn with `seed`)."""
    rng = np.random.default_rng(seed)
    kept = [row for row in rows if not anomaly_set.defective[row]]
    for kind in sorted({anomaly_set.types.get(anomaly_set.images[row]) or "" for row in rows} - {""}):
        members = [row for row in rows if anomaly_set.defective[row]
                   and anomaly_set.types.get(anomaly_set.images[row]) == kind]
        kept += [int(row) for row in rng.choice(members, min(per_type, len(members)), replace=False)]
    return sorted(kept)


def unseen_types(val: list[dict], test: list[dict], model: PatchCoreMaps, args: argparse.Namespace) -> tuple[str, dict]:
    """Per defect type, outlined by the bank alone, by a head trained on every mask but that type's (a type the head
    never saw; its whole score, and its score raised to `--floor`), and on the test split by the head trained on
    every validation mask: that type's validation photos (within them and PRO: the intact validation photos taught
    the heads), then its test photos with every intact test photo."""
    def head_on(photos: list[dict]) -> DefectHead:
        return DefectHead.fit([p["cells"] for p in photos], [p["cell_mask"] for p in photos], args.dims, args.context,
                              args.seed)

    def cells(photo: dict, head: DefectHead | None, floor: float) -> np.ndarray:
        return photo["place"] if head is None else outline_cells(photo["place"], head.cell_scores(photo["cells"]),
                                                                  args.weight, floor)

    rule = "whole score" if np.isinf(args.floor) else f"score raised to {args.floor:g}"
    every = head_on(val)
    results, tables = {"validation": {}, "test": {}}, {"validation": [], "test": []}
    keys = {"validation": ("own_photos", "pro"), "test": ("pixel_auroc", "own_photos", "pro")}
    names = {"validation": [], "test": []}
    for kind in sorted({p["kind"] for p in test if p["defective"]}):
        without = head_on([p for p in val if p["kind"] != kind])
        arms = {"bank only": (None, -np.inf), "head without this type's masks, whole score": (without, -np.inf),
                f"head without this type's masks, {rule}": (without, args.floor),
                f"head with every type's masks, {rule}": (every, args.floor)}
        for split, photos in (("validation", [p for p in val if p["kind"] == kind]),
                              ("test", [test[i] for i in with_intact(test, kind)])):
            names[split] = [name for name in arms if split == "test" or "every" not in name]
            results[split][kind] = {name: scored(photos, finished_maps(photos, [cells(p, *arms[name]) for p in photos],
                                                                       model), list(range(len(photos))))
                                    for name in names[split]}
            tables[split].append(f"| {kind} ({sum(p['defective'] for p in photos)}) | " + " | ".join(
                " / ".join(number(figures[key]) for key in keys[split]) for figures in results[split][kind].values())
                + " |")
    markdown = "\n\n".join("\n".join([f"| defect type ({split} photos) | " + " | ".join(
        f"{name}: " + " / ".join(NAMES[key] for key in keys[split]) for name in names[split]) + " |",
        "|---|" + "---:|" * len(names[split])] + tables[split]) for split in ("validation", "test"))
    return markdown, results


NAMES = {"pixel_auroc": "pixel AUROC", "own_photos": "within its photos", "pro": "PRO"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_options(parser)
    parser.set_defaults(sizes=[192])
    parser.add_argument("--weight", type=float, default=HEAD_DEFAULTS["weight"],
                        help="the head's score added to the map, times this (default: the tool's)")
    parser.add_argument("--context", type=int, default=HEAD_DEFAULTS["context"],
                        help="cells a side of the mean around each cell (default: the tool's)")
    parser.add_argument("--dims", type=int, default=HEAD_DEFAULTS["dims"],
                        help="PCA components of the cell features (default: the tool's)")
    parser.add_argument("--floor", type=float, default=HEAD_DEFAULTS["floor"],
                        help="the head's score raised to this before it is added (default: the tool's; "
                             "--floor=-inf: the whole score)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--unseen-types", action="store_true",
                        help="per defect type, a head trained without that type's masks against one trained with them")
    parser.add_argument("--per-type", type=int, help="keep only this many of each type's labelled defects among "
                                                     "the validation photos (seeded): fewer masks to learn from")
    args = parser.parse_args(argv)
    if len(args.sizes) != 1:
        parser.error("--sizes takes one size here (the localiser the head is trained on)")
    size = args.sizes[0]
    anomaly_set, validation, fits = fitted_sizes(args)
    validation = fewer(anomaly_set, validation, args.per_type, args.seed) if args.per_type else validation
    localizer = load_localizer(fits[size][0])
    val = photo_cells(localizer, anomaly_set, validation, "validation photos")
    if args.unseen_types:
        test = photo_cells(localizer, anomaly_set, anomaly_set.rows("test"), "test photos")
        table, results = unseen_types(val, test, localizer.model, args)
        markdown = (f"PatchCore at {size} px (Lite0 features, memory bank {args.coreset_size:,} rows) and its defect "
                    f"head (context {args.context} cells, {args.dims} PCA components, {head_rule(args)}), "
                    f"trained on the validation photos' masks ({sum(p['defective'] for p in val)} labelled defects) "
                    "with and without each type's. Validation: each row that type's validation photos (within them "
                    "and PRO; the intact validation photos taught the heads). Test: each row that type's test photos "
                    f"with every intact test photo ({sum(not p['defective'] for p in test)}).\n\n{table}")
        print(markdown)
        record("patchcore_head_unseen_types" + whole(args), "PatchCore's defect head on a defect type it never saw "
               f"(magnetic tiles{', the whole head' if whole(args) else ''})", markdown, results)
        return 0
    started = time.perf_counter()
    held_out, head = heads(val, args)
    fit_seconds = time.perf_counter() - started
    results = {"validation, bank only": figures(val, [p["place"] for p in val], localizer.model),
               "validation, head only (cross-validated)": figures(val, held_out, localizer.model),
               "validation, bank + head (cross-validated)": figures(
                   val, [outline(p["place"], h, args) for p, h in zip(val, held_out)], localizer.model)}
    test = photo_cells(localizer, anomaly_set, anomaly_set.rows("test"), "test photos")
    started = time.perf_counter()
    test_head = [head.cell_scores(p["cells"]) for p in test]
    head_ms = 1000 * (time.perf_counter() - started) / len(test)
    results["test, bank only"] = figures(test, [p["place"] for p in test], localizer.model)
    results["test, bank + head"] = figures(test, [outline(p["place"], h, args) for p, h in zip(test, test_head)],
                                           localizer.model)
    results["settings"] = {"size": size, "weight": args.weight, "floor": None if whole(args) else args.floor,
                           "context": args.context, "dims": args.dims, "folds": args.folds, "per_type": args.per_type,
                           "head_fit_seconds": round(fit_seconds, 1), "head_ms_per_photo": round(head_ms, 1)}
    defective = sum(p["defective"] for p in val)
    test_defective = sum(p["defective"] for p in test)
    table = ["| maps | image AUROC | pixel AUROC | against intact photos | within defective photos | PRO | "
             "uneven: within its photos | uneven: pixel AUROC |", "|---|" + "---:|" * 7]
    table += [rows_of(name, result) for name, result in results.items() if name != "settings"]
    markdown = (f"PatchCore at {size} px (Lite0 features, memory bank {args.coreset_size:,} rows) and a linear "
                f"head on its cells trained with labelled defect masks (context {args.context} cells, "
                f"{args.dims} PCA components, {head_rule(args)}). Validation: {len(val) - defective} "
                f"intact photos and {defective} labelled defects"
                f"{f' ({args.per_type} of each type)' if args.per_type else ''}, the head scored by {args.folds}-fold "
                f"cross-validation over photos. Test: the head trained on every validation photo "
                f"({fit_seconds:.0f} s with the cross-validation), scored on {len(test) - test_defective} intact and "
                f"{test_defective} defective test photos ({head_ms:.0f} ms per photo on top of the localiser).\n\n"
                + "\n".join(table))
    print(markdown)
    fewer_masks = f", {args.per_type} masks per type" if args.per_type else ""
    record("patchcore_head" + (f"_{args.per_type}_per_type" if args.per_type else "") + whole(args), "A linear head "
           f"trained with a few labelled defect masks on PatchCore's cells (magnetic tiles{fewer_masks}"
           f"{', the whole head' if whole(args) else ''})", markdown, results)
    return 0


if __name__ == "__main__":
    sys.exit(run(lambda: main()))
