"""Which backbone levels PatchCore compares photos on, measured on the magnetic tiles (`../shared/data/anomaly`).

An exploration, cheaper than the full pipeline: every photo's backbone maps (P2-P5, shorter side 256 px, standardised)
are computed once and cached; each configuration then builds its patch features (3x3 neighbourhood average,
coarser levels brought to the finest level's grid), draws a random memory bank (no coreset) from the intact train
photos, and scores the test split: image AUROC (the mean of each map's top 1%) and pixel AUROC (every 4th pixel,
at the model's input size), overall and per defect type. Image AUROC also with the mean of the map's top 10% and
of the whole map as the photo's score, and with the top 1% and the whole of the map away from the defect (a
defective photo's map outside its mask grown by 16 px): a check of whether a score comes from the defect or from
the rest of the photo.

`--own-tile W` adds W times each cell's distance to the median feature of its own photo to the bank distance: a
cell unlike the rest of its own tile scores higher, even where the bank holds a like texture from another tile.
`--position W` appends each cell's place in its photo (row and column as fractions of the side, times W) to its
features, so a cell is compared with the bank's cells from about the same place in their tiles (W = 0: anywhere).
`--defect-free-halves` instead scores each defective test photo on a half of it with no defect near, cut before the
network, against intact photos' halves of the same side: raw, and measured by place as the tool measures its maps
(anomaly/patchcore/maps.py), with place statistics from the intact train photos the tool keeps out of the bank.
`--bank-from FOLDER` takes the memory bank (a coreset) of a fitted localiser there instead of a random one;
`--halves-shares` the top shares of each half's map it is scored by, `--halves-less-median` each less the map's
median too.

    python benchmarks/patchcore_features.py --levels P3,P4 P3,P4,P5 [--centre none median] [--bank 40000]
        [--backbone efficientnet_lite0] [--side 256] [--neighbourhood 3] [--own-tile 0 0.5 1]
        [--position 0 60] [--defect-free-halves [--bank-from runs/anomaly-size/localizer-192-20000]
        [--halves-shares 0.01 0.1] [--halves-less-median]]
"""

from __future__ import annotations

import argparse
import itertools
import pickle
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from common import DEFAULT_DATA_ROOT, data_folder, record, run, work_folder

from defect_tf.anomaly.images import model_input, read_photo, standardised
from defect_tf.anomaly.patchcore.coreset import nearest_distances
from defect_tf.anomaly.patchcore.maps import DEFAULTS, PatchCoreMaps, by_place, place_statistics, read_bank
from defect_tf.anomaly.patchcore.model import build_feature_model, held_out
from defect_tf.progress_bar import progress_bar

LEVELS = ["P2", "P3", "P4", "P5"]
TYPES = ["blowhole", "break", "crack", "fray", "uneven"]
SCORE_SHARES = (0.01, 0.1, 1.0)  # a photo's score: the mean of its map's top 1% (the figure), 10%, or all of it
AWAY = 16  # px: a defective photo's map "away from the defect" leaves out its mask grown by this much


def rows(path: Path) -> dict[str, str]:
    return dict(line.split() for line in path.read_text().splitlines()[1:] if line.strip())


def cached_maps(folder: Path, work: Path, side: int, backbone: str) -> dict:
    """Every photo's maps at P2-P5 (float16), its mask at the input size, split, label and type; cached in `work`."""
    cache = work / f"maps{side}.pkl" if backbone == "efficientnet_lite0" else work / f"maps_{backbone}_{side}.pkl"
    if cache.is_file():
        return pickle.loads(cache.read_bytes())
    split, label, kind = rows(folder / "split.txt"), rows(folder / "labels.txt"), rows(folder / "types.txt")
    model = build_feature_model(backbone, LEVELS, "imagenet")
    out = {}
    for name in progress_bar(sorted(split), desc="features", unit="photo"):
        x = standardised(model_input(read_photo(folder / "images" / name), side))
        maps = [np.asarray(m)[0].astype(np.float16) for m in model.predict_on_batch(x[None])]
        mask = None
        if label[name] == "1":
            mask = np.asarray(Image.open(folder / "masks" / f"{name[:-4]}.png").resize((x.shape[1], x.shape[0]),
                                                                                       Image.NEAREST)) > 0
        out[name] = dict(maps=maps, mask=mask, split=split[name], label=int(label[name]), type=kind[name],
                         shape=x.shape[:2])
    cache.write_bytes(pickle.dumps(out))
    return out


def patch_features(entry: dict, levels: list[int], centre: str, neighbourhood: int = 3,
                   position: float = 0.0) -> np.ndarray:
    maps = [entry["maps"][i].astype(np.float32) for i in levels]
    finest, out = maps[0].shape[:2], []
    for level in maps:
        level = ndimage.uniform_filter(level, size=(neighbourhood, neighbourhood, 1), mode="nearest")
        if level.shape[:2] != finest:
            level = ndimage.zoom(level, (finest[0] / level.shape[0], finest[1] / level.shape[1], 1), order=1)
        out.append(level)
    features = np.concatenate(out, -1)
    if centre == "median":
        features = features - np.median(features.reshape(-1, features.shape[-1]), 0)
    if position:
        rows, cols = features.shape[:2]
        place = np.stack(np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols, indexing="ij"), -1)
        features = np.concatenate([features, position * place.astype(features.dtype)], -1)
    return features


def random_bank(cache: dict, features_of, bank_rows: int, left_out: set[str] = frozenset()) -> np.ndarray:
    """`bank_rows` rows drawn at random (seed 0) from the intact train photos' patch features (but `left_out`'s):
    the memory bank."""
    train = [name for name, entry in cache.items() if entry["split"] == "train" and name not in left_out]
    bank = np.concatenate([f.reshape(-1, f.shape[-1]) for f in (features_of(name) for name in train)])
    return bank[np.random.default_rng(0).choice(len(bank), min(bank_rows, len(bank)), replace=False)]


def smoothed_map(cells: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A map of cells brought to `shape` (bilinear) and smoothed (a Gaussian of 4 px)."""
    return ndimage.gaussian_filter(ndimage.zoom(cells, (shape[0] / cells.shape[0], shape[1] / cells.shape[1]),
                                                order=1), 4)


def top_mean(ascending: np.ndarray, share: float) -> float:
    """The mean of the highest `share` of sorted values (at least one)."""
    return ascending[-max(1, int(share * ascending.size)):].mean()


def evaluate(cache: dict, levels: list[int], centre: str, bank_rows: int, neighbourhood: int = 3,
             own_tile: tuple[float, ...] = (0.0,), position: float = 0.0) -> dict[float, dict]:
    """The figures for each weight of the own-tile distance (0: the bank distance alone)."""
    features_of = lambda name: patch_features(cache[name], levels, centre, neighbourhood, position)
    bank = random_bank(cache, features_of, bank_rows)
    test = [name for name, entry in cache.items() if entry["split"] == "test"]
    labels, kinds, pixel_truth = [], [], []
    scores, pixel_maps = {w: [] for w in own_tile}, {w: [] for w in own_tile}
    for name in progress_bar(test, desc="scoring", unit="photo", leave=False):
        entry = cache[name]
        height, width = entry["shape"]
        truth = entry["mask"] if entry["mask"] is not None else np.zeros((height, width), bool)
        away = ~ndimage.binary_dilation(truth, iterations=AWAY) if truth.any() else np.ones_like(truth)
        features = features_of(name)
        h, w_cells = features.shape[:2]
        rows = features.reshape(-1, features.shape[-1])
        distances = np.sqrt(nearest_distances(rows, bank)).reshape(h, w_cells)
        texture = rows[:, :-2] if position else rows  # a cell's place does not count against its own tile
        own = np.linalg.norm(texture - np.median(texture, 0), axis=1).reshape(h, w_cells)
        for weight in own_tile:
            combined = distances + weight * own
            anomaly_map = smoothed_map(combined, (height, width))
            values = np.sort(anomaly_map.ravel())
            kept = np.sort(anomaly_map[away]) if away.any() else values  # the map away from the defect
            scores[weight].append([top_mean(values, share) for share in SCORE_SHARES]
                                  + [top_mean(kept, SCORE_SHARES[0]), kept.mean()])
            pixel_maps[weight].append(anomaly_map.ravel()[::4])
        labels.append(entry["label"])
        kinds.append(entry["type"])
        pixel_truth.append(truth.ravel()[::4])
    labels, kinds = np.array(labels), np.array(kinds)
    results = {}
    for weight in own_tile:
        by_share = np.array(scores[weight])
        image_scores = by_share[:, 0]
        result = {"image_auroc": roc_auc_score(labels, image_scores),
                  "image_auroc_by_share": {f"{share:g}": roc_auc_score(labels, by_share[:, i])
                                           for i, share in enumerate(SCORE_SHARES)},
                  "image_auroc_away_from_defect": {f"{share:g}": roc_auc_score(labels, by_share[:, -2 + i])
                                                   for i, share in enumerate((SCORE_SHARES[0], 1.0))},
                  "pixel_auroc": roc_auc_score(np.concatenate(pixel_truth), np.concatenate(pixel_maps[weight]))}
        for kind in TYPES:
            chosen = np.flatnonzero((kinds == kind) | (kinds == "free"))
            result[kind] = (roc_auc_score(labels[chosen], image_scores[chosen]),
                            roc_auc_score(np.concatenate([pixel_truth[i] for i in chosen]),
                                          np.concatenate([pixel_maps[weight][i] for i in chosen])))
            result[f"{kind}_image_auroc_by_share"] = {f"{share:g}": roc_auc_score(labels[chosen], by_share[chosen, i])
                                                      for i, share in enumerate(SCORE_SHARES)}
            result[f"{kind}_image_auroc_away_from_defect"] = {
                f"{share:g}": roc_auc_score(labels[chosen], by_share[chosen, -2 + i])
                for i, share in enumerate((SCORE_SHARES[0], 1.0))}
        results[weight] = result
    return results


def defect_free_halves(cache: dict, folder: Path, levels: list[int], bank_rows: int, side: int, backbone: str,
                       margin: int = 16, bank: np.ndarray | None = None,
                       shares: tuple[float, ...] = SCORE_SHARES[:1], less_median: bool = False
                       ) -> tuple[list[str], dict]:
    """Each defective test photo scored on one half of it that holds no defect (the first of top, bottom, left,
    right with no mask pixel within `margin` px), cut from the standardised photo before the network, so no feature
    can see the defect; each intact test photo on all four halves. Image AUROC of the top-1% and whole-map scores,
    each defective half ranked only against the intact photos' halves of the same side (so where a half lies does
    not count), overall and per type (the top `shares` and the whole map; with `less_median` each top share less the
    map's median too); photos with no such half are left out. Each half's map is scored raw and
    measured by place (the tool's rule), against the place statistics of the halves of the same side of the intact
    train photos the tool keeps out of the bank; the bank is drawn from the other intact train photos (or given:
    a fitted localiser's)."""
    train = sorted(name for name, entry in cache.items() if entry["split"] == "train")
    kept_out = {train[i] for i in held_out(len(train), DEFAULTS["place_holdout"])}
    if bank is None:
        bank = random_bank(cache, lambda name: patch_features(cache[name], levels, "none"), bank_rows, kept_out)
    model = build_feature_model(backbone, [LEVELS[i] for i in levels], "imagenet")
    distances = PatchCoreMaps(side, {}, bank=bank)  # the tool's distance to the bank
    halves_of = {}  # side -> the kept-out photos' cell maps of that half

    def cells_of(part: np.ndarray) -> np.ndarray:
        maps = [np.asarray(m)[0] for m in model.predict_on_batch(part[None])]
        return distances.cell_distances(patch_features({"maps": maps}, list(range(len(levels))), "none"))

    def halves(name: str) -> tuple[np.ndarray, dict]:
        x = standardised(model_input(read_photo(folder / "images" / name), side))
        height, width = x.shape[:2]
        rows_half, cols_half = height // 64 * 32, width // 64 * 32  # halves in multiples of 32
        return x, {"top": (slice(0, rows_half), slice(None)), "bottom": (slice(height - rows_half, None), slice(None)),
                   "left": (slice(None), slice(0, cols_half)), "right": (slice(None), slice(width - cols_half, None))}

    for name in progress_bar(sorted(kept_out), desc="places", unit="photo", leave=False):
        x, parts = halves(name)
        for side_name, half in parts.items():
            halves_of.setdefault(side_name, []).append(cells_of(x[half]))
    places = {side_name: place_statistics(maps) for side_name, maps in halves_of.items()}

    def scores_of(part: np.ndarray, side_name: str) -> np.ndarray:
        cells = cells_of(part)
        scored = []
        for measured in (cells, by_place(cells, places[side_name])):
            values = np.sort(smoothed_map(measured, part.shape[:2]).ravel())
            scored += [top_mean(values, share) for share in shares] + [values.mean()]
            if less_median:
                scored += [top_mean(values, share) - np.median(values) for share in shares]
        return np.array(scored)

    intact = {side_name: [] for side_name in ("top", "bottom", "left", "right")}  # side -> intact photos' scores
    defective = []  # (type, side, scores)
    test = [name for name, entry in cache.items() if entry["split"] == "test"]
    for name in progress_bar(test, desc="halves", unit="photo", leave=False):
        entry = cache[name]
        x, parts = halves(name)
        if entry["mask"] is None:
            for side_name, half in parts.items():
                intact[side_name].append(scores_of(x[half], side_name))
            continue
        near = ndimage.binary_dilation(entry["mask"], iterations=margin)
        clear = [side_name for side_name, half in parts.items() if not near[half].any()]
        if clear:
            defective.append((entry["type"], clear[0], scores_of(x[parts[clear[0]]], clear[0])))

    def matched_auroc(halves_scored: list, rule: int) -> float:
        """P(a defective half outscores an intact half of the same side), ties counted half."""
        wins = pairs = 0.0
        for _, side_name, score in halves_scored:
            others = np.array([s[rule] for s in intact[side_name]])
            wins += np.sum(score[rule] > others) + 0.5 * np.sum(score[rule] == others)
            pairs += len(others)
        return wins / pairs

    names = [f"top {100 * share:g}%" if share else "maximum" for share in shares]
    names += ["whole map"] + ([f"{name} less the median" for name in names] if less_median else [])
    rule_names = names + [f"{name}, by place" for name in names]  # raw, then the same measured by place
    rules = range(len(rule_names))
    sides = {side_name: sum(1 for row in defective if row[1] == side_name) for side_name in intact}
    figures = {"all": [matched_auroc(defective, rule) for rule in rules], "kept": len(defective),
               "intact": len(intact["top"]), "sides": sides, "place_photos": len(kept_out), "rules": rule_names}
    total = sum(1 for e in cache.values() if e["split"] == "test" and e["label"] == 1)
    lines = ["| defective photos | kept | image AUROC, " + " | ".join(names) + " | "
             + " | ".join(f"{name}, measured by place" for name in names) + " |",
             "|---|---:|" + "---:|" * len(rule_names),
             f"| all | {len(defective)} of {total} | " + " | ".join(f"{v:.3f}" for v in figures["all"]) + " |"]
    for kind in TYPES:
        rows = [row for row in defective if row[0] == kind]
        figures[kind] = [matched_auroc(rows, rule) for rule in rules]
        lines.append(f"| {kind} | {len(rows)} of {sum(e['type'] == kind and e['split'] == 'test' for e in cache.values())}"
                     " | " + " | ".join(f"{v:.3f}" for v in figures[kind]) + " |")
    lines.append("\nDefective halves by side: " + ", ".join(f"{k} {v}" for k, v in sides.items())
                 + f"; every intact test photo ({len(intact['top'])}) scored on all four.")
    return lines, figures

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(DEFAULT_DATA_ROOT))
    parser.add_argument("--levels", nargs="+", default=["P3,P4", "P3,P4,P5"])
    parser.add_argument("--centre", nargs="+", default=["none"], choices=["none", "median"])
    parser.add_argument("--bank", type=int, default=40_000)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--side", type=int, default=256, help="the photos' shorter side")
    parser.add_argument("--neighbourhood", type=int, nargs="+", default=[3], help="cells averaged per side")
    parser.add_argument("--own-tile", type=float, nargs="+", default=[0.0],
                        help="weights of each cell's distance to its own photo's median feature")
    parser.add_argument("--position", type=float, nargs="+", default=[0.0],
                        help="weights of each cell's place in its photo, appended to its features")
    parser.add_argument("--defect-free-halves", action="store_true",
                        help="instead: score each test photo on a half of it that holds no defect (the first --levels)")
    parser.add_argument("--bank-from", help="with --defect-free-halves: a fitted localiser's folder, whose memory "
                                            "bank is used instead of a random one")
    parser.add_argument("--halves-shares", type=float, nargs="+", default=list(SCORE_SHARES[:1]),
                        help="with --defect-free-halves: the top shares of each half's map it is scored by (0: the "
                             "maximum), besides the whole map")
    parser.add_argument("--halves-less-median", action="store_true",
                        help="with --defect-free-halves: each top share less the median of the half's map too")
    parser.add_argument("--work", help="folder for the cached maps")
    args = parser.parse_args(argv)
    if not args.defect_free_halves and (args.bank_from or args.halves_less_median
                                        or args.halves_shares != list(SCORE_SHARES[:1])):
        parser.error("--bank-from, --halves-shares and --halves-less-median need --defect-free-halves")
    folder = data_folder(args.data_root, "anomaly")
    cache = cached_maps(folder, work_folder(args.work, "patchcore-features-"), args.side, args.backbone)
    if args.defect_free_halves:
        bank = read_bank(Path(args.bank_from) / "bundle") if args.bank_from else None
        lines, figures = defect_free_halves(cache, folder, [LEVELS.index(level) for level in args.levels[0].split(",")],
                                            args.bank, args.side, args.backbone, bank=bank,
                                            shares=tuple(args.halves_shares), less_median=args.halves_less_median)
        print("\n".join(lines), flush=True)
        described = (f"the memory bank of the localiser fitted in `{args.bank_from}` ({len(bank):,} rows, a coreset)"
                     if args.bank_from else f"random memory bank of {args.bank:,} rows")
        record(f"patchcore_features_{args.backbone}_{args.side}px_defect_free_halves"
               + (f"_coreset_{len(bank)}" if args.bank_from else "")
               + ("_photo_coreset" if args.bank_from and args.bank_from.rstrip("/").endswith("-photo-coreset") else "")
               + ("" if args.halves_shares == list(SCORE_SHARES[:1]) else "_shares")
               + ("_less_median" if args.halves_less_median else ""),
               f"PatchCore on the magnetic tiles without their defects (exploration): {args.backbone}, {args.side} px"
               + (f", a fitted localiser's {len(bank):,}-row bank" if args.bank_from else ""),
               f"Each defective test photo scored on a half of it with no defect pixel within 16 px, cut from the "
               f"standardised photo before the network, so no feature sees the defect, and ranked against the intact "
               f"test photos' halves of the same side (top, bottom, left, right); "
               f"{args.levels[0]}, {described} of the intact train photos' whole-photo "
               f"features (but the {figures['place_photos']} the tool keeps out for its place statistics, which come "
               f"from their halves of the same side), shorter side {args.side} px.\n\n" + "\n".join(lines), figures)
        return 0
    columns = ["levels", "per-photo centring", "neighbourhood", "place weight", "own-tile weight", "image AUROC",
               "pixel AUROC", "image AUROC, top 10% / whole map", "image AUROC away from the defect, top 1% / whole map",
               *(f"{kind}: image / pixel" for kind in TYPES)]
    lines = ["| " + " | ".join(columns) + " |", "|---|---|" + "---:|" * (len(columns) - 2)]
    figures = {}
    for levels in args.levels:
        for centre in args.centre:
            for neighbourhood, position in itertools.product(args.neighbourhood, args.position):
                results = evaluate(cache, [LEVELS.index(level) for level in levels.split(",")], centre, args.bank,
                                   neighbourhood, tuple(args.own_tile), position)
                for weight, result in results.items():
                    figures[f"{levels} {centre} {neighbourhood} {position:g} {weight:g}"] = result
                    lines.append(f"| {levels} | {centre} | {neighbourhood} | {position:g} | {weight:g} | "
                                 f"{result['image_auroc']:.3f} | {result['pixel_auroc']:.3f} | "
                                 + " / ".join(f"{v:.3f}" for v in list(result["image_auroc_by_share"].values())[1:])
                                 + " | " + " / ".join(f"{v:.3f}" for v in result["image_auroc_away_from_defect"].values())
                                 + " | "
                                 + " | ".join(f"{result[k][0]:.2f} / {result[k][1]:.2f}" for k in TYPES) + " |")
                    print(lines[-1], flush=True)
    record(f"patchcore_features_{args.backbone}_{args.side}px",
           f"PatchCore's feature levels on the magnetic tiles (exploration): {args.backbone}, {args.side} px",
           f"Random memory bank of {args.bank:,} rows (no coreset), shorter side {args.side} px, standardised photos; "
           "place weight: each cell's row and column (fractions of the side) times it, appended to its features; "
           "own-tile weight: each cell's distance to its photo's median feature, added to its bank distance with "
           "that weight.\n\n" + "\n".join(lines), figures)
    return 0


if __name__ == "__main__":
    sys.exit(run(lambda: main()))
