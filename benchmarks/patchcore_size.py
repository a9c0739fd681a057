"""PatchCore's input size, chosen on validation photos only, on the magnetic tiles (`../shared/data/anomaly`).

For each shorter side the localiser is fitted as `benchmarks/anomaly.py` fits it (the same split: the intact train
photos, a tenth of them to validation; 20 labelled defects of each type taken out of the test split), then scored on
its validation photos: the intact ones and the 100 labelled defects (with their masks). No test photo enters the
table (each fit, as the tool's own run, still writes its test report into its folder's `metrics.json`), so the size
chosen here can then be reported on the test split by `benchmarks/anomaly.py --image-size S` (same `--work`: the
fits are read back). Figures: image AUROC, pixel AUROC, PRO, IoU, Dice, coverage at each size's own calibrated
cuts, per defect type, with fit time and ms per photo.

    python benchmarks/patchcore_size.py [--sizes 128 160 192 256] [--coreset-size 10000] [--work DIR]
    python benchmarks/patchcore_size.py --sizes 192 --smoothing 4 8 16 [--work DIR]   # the maps' smoothing instead
    python benchmarks/patchcore_size.py --sizes 192 --coreset-sizes 5000 10000 20000 [--work DIR]   # the bank's size
    python benchmarks/patchcore_size.py --sizes 192 --photo-coreset [--work DIR]   # each photo's pool by k-center
    python benchmarks/patchcore_size.py --sizes 192 --fit-seeds 1 2 [--work DIR]   # how much the fit's seed moves it

`--photo-coreset` fits each size a second time with the pool the coreset is chosen from drawn by k-center greedy
within each photo (its most spread patches) rather than at random, into the fit's folder with `-photo-coreset`
added, and scores both on the validation photos (that fit's test report in its folder's `metrics.json`, as the tool
writes one). `--fit-seeds` does the same with the random pool and coreset drawn with other seeds (`-seed-S`), the
split and photos unchanged: how far a figure moves with the fit's own chance.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from anomaly import fit_localizer, localizer_folder, per_type_table, table, write_split

from common import DEFAULT_DATA_ROOT, data_folder, record, run, work_folder

from defect_tf.anomaly.data import AnomalySet, read_anomaly_set
from defect_tf.anomaly.evaluation import score_localizer
from defect_tf.anomaly.images import read_photo
from defect_tf.anomaly.patchcore.coreset import greedy_coreset
from defect_tf.anomaly.patchcore.model import PatchCore
from defect_tf.anomaly.store import Localizer, load_localizer, save_localizer
from defect_tf.anomaly.training import METRICS_FILE, LocalizerConfig, calibrated
from defect_tf.io.files import write_text


def validation_rows(anomaly_set: AnomalySet) -> list[int]:
    """The photos the localiser's thresholds were calibrated on: intact validation photos and every labelled
    defect (the benchmark's split marks 80 of them train, for its classifier; `read_anomaly_set` already moves a
    defective train photo to validation, since a localiser learns from intact photos only)."""
    return anomaly_set.rows("val")


def fitted_sizes(args: argparse.Namespace) -> tuple[AnomalySet, list[int], dict[int, tuple[Path, float]]]:
    """The benchmark's photos, its validation rows, and PatchCore fitted (or read back) at each of `args.sizes`:
    size -> (its run folder, its fit in seconds)."""
    folder, work, split, anomaly_set = benchmark_set(args)
    return anomaly_set, validation_rows(anomaly_set), fit_sizes(args, folder, work, split)


def benchmark_set(args: argparse.Namespace) -> tuple[Path, Path, Path, AnomalySet]:
    """The data's folder, the work folder, the benchmark's split file there, and its photos (read once)."""
    folder = data_folder(args.data_root, "anomaly")
    work = work_folder(args.work, "anomaly-")
    split, _ = write_split(folder, work, args.seed)
    anomaly_set = read_anomaly_set(str(folder / "images"), str(folder / "labels.txt"), str(split),
                                   str(folder / "masks"), str(folder / "types.txt"))
    return folder, work, split, anomaly_set


def fit_sizes(args: argparse.Namespace, folder: Path, work: Path, split: Path) -> dict[int, tuple[Path, float]]:
    """PatchCore fitted (or read back) at each of `args.sizes` with `args.coreset_size` rows: size -> (its run
    folder, its fit in seconds)."""
    fits = {}
    for size in args.sizes:
        fit_args = SimpleNamespace(image_size=size, coreset_size=args.coreset_size, seed=args.seed,
                                   draem_image_size=None, draem_epochs=LocalizerConfig.epochs,
                                   defect_head=False)  # a head learns from the validation photos scored here
        output = localizer_folder(work, "patchcore", fit_args)
        fits[size] = output, fit_localizer(folder, split, output, "patchcore", fit_args)
    return fits


class PhotoCoresetPatchCore(PatchCore):
    """PatchCore whose pool takes each photo's most spread patches (k-center greedy within the photo) instead of a
    random draw, so each photo's rarest patches reach the memory bank's coreset choice."""

    def photo_rows(self, cells: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        return cells[greedy_coreset(cells, count, seed=int(rng.integers(2**31)))]


def refit(anomaly_set: AnomalySet, reference: Path, suffix: str, model_class: type[PatchCore] = PatchCore,
          seed: int | None = None) -> tuple[Path, float]:
    """`reference` (a fit of `fit_sizes`) fitted again as `model_class` (with another `seed`, if given) on the same
    photos, calibrated and tested as the tool does, into the folder beside it named with `suffix` (read back when
    done): (its folder, its fit in seconds)."""
    output = reference.with_name(f"{reference.name}-{suffix}")
    if not (output / METRICS_FILE).is_file():
        started = time.time()
        base = load_localizer(reference).metadata
        settings = {key: base.settings[key] for key in ("backbone", "coreset_size", "seed")}
        model = model_class(base.image_size, {**settings, **({} if seed is None else {"seed": seed})})
        rows = anomaly_set.rows("train", False)
        model.fit((read_photo(anomaly_set.path(row)) for row in rows), len(rows))
        seconds = time.time() - started
        thresholds = calibrated(model, anomaly_set)
        metadata = replace(base, image_threshold=thresholds.image, pixel_threshold=thresholds.pixel,
                           calibration=thresholds.rule, settings=dict(model.settings),
                           trained_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
        output.mkdir(exist_ok=True)
        location = save_localizer(output, model, metadata)
        report = score_localizer(Localizer(model, metadata, location), anomaly_set, anomaly_set.rows("test"))
        write_text(output / METRICS_FILE, json.dumps({**report, "fit_seconds": seconds}, indent=1))
    return output, json.loads((output / METRICS_FILE).read_text())["fit_seconds"]


def smoothed(localizer: Localizer, anomaly_set: AnomalySet, smoothing: float | None) -> Localizer:
    """The localiser with its maps smoothed by a Gaussian of `smoothing` px (None: its own) and its thresholds
    calibrated again on the validation photos, as training calibrates them."""
    if smoothing is None or smoothing == localizer.model.settings["smoothing"]:
        return localizer
    localizer.model.settings["smoothing"] = smoothing
    thresholds = calibrated(localizer.model, anomaly_set)
    metadata = replace(localizer.metadata, image_threshold=thresholds.image, pixel_threshold=thresholds.pixel,
                       calibration=thresholds.rule, settings=dict(localizer.model.settings))
    return replace(localizer, metadata=metadata)


def add_size_options(parser: argparse.ArgumentParser) -> None:
    """The options every PatchCore size study shares (its fits are shared through `--work`)."""
    parser.add_argument("--data-root", default=str(DEFAULT_DATA_ROOT))
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 160, 192, 256])
    parser.add_argument("--coreset-size", type=int, default=LocalizerConfig.coreset_size)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", help="folder for the runs (shared with benchmarks/anomaly.py: fits are read back)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_size_options(parser)
    parser.add_argument("--smoothing", type=float, nargs="+",
                        help="the maps' Gaussian in px of the model's input, each size scored with each (thresholds "
                             "calibrated again); default: the fit's own only")
    parser.add_argument("--coreset-sizes", type=int, nargs="+",
                        help="memory banks of these many rows, each size fitted with each (instead of --coreset-size)")
    parser.add_argument("--photo-coreset", action="store_true",
                        help="each size fitted again with its pool drawn by k-center greedy within each photo")
    parser.add_argument("--fit-seeds", type=int, nargs="+",
                        help="each size fitted again with these seeds of its pool and coreset (the split unchanged)")
    args = parser.parse_args(argv)
    for study in ("photo_coreset", "fit_seeds"):
        if getattr(args, study) and (args.smoothing or args.coreset_sizes):
            parser.error(f"--{study.replace('_', '-')} is a study of its own: leave out --smoothing and "
                         "--coreset-sizes")
    reports, times = {}, {}
    folder, work, split, anomaly_set = benchmark_set(args)  # once, however many memory banks are fitted
    rows = validation_rows(anomaly_set)
    for coreset_size in args.coreset_sizes or [args.coreset_size]:
        by_size = fit_sizes(argparse.Namespace(**{**vars(args), "coreset_size": coreset_size}), folder, work, split)
        fits = {f"{size} px": fit for size, fit in by_size.items()}
        if args.photo_coreset:
            fits = {**{f"{size} px, pool drawn at random": fit for size, fit in by_size.items()},
                    **{f"{size} px, pool of each photo's coreset": refit(anomaly_set, output, "photo-coreset",
                                                                          PhotoCoresetPatchCore)
                       for size, (output, _) in by_size.items()}}
        for fit_seed in args.fit_seeds or []:
            fits |= {f"{size} px, fit seed {fit_seed}": refit(anomaly_set, output, f"seed-{fit_seed}", seed=fit_seed)
                     for size, (output, _) in by_size.items()}
        for fitted, (output, seconds) in fits.items():
            for smoothing in args.smoothing or [None]:
                label = (fitted + (f", smoothing {smoothing:g} px" if args.smoothing else "")
                         + (f", {coreset_size:,} rows" if args.coreset_sizes else ""))
                times[label] = f"{seconds:.0f} s"
                print(f"scoring {len(rows)} validation photos: {label}", flush=True)
                reports[label] = score_localizer(smoothed(load_localizer(output), anomaly_set, smoothing),
                                                 anomaly_set, rows)
    defective = sum(bool(anomaly_set.defective[row]) for row in rows)
    if args.fit_seeds:
        studied, name, title = ("the seed of its pool and coreset", "patchcore_fit_seeds",
                                "PatchCore fitted with other seeds, on")
    elif args.photo_coreset:
        studied, name, title = ("the pool its coreset is chosen from", "patchcore_photo_coreset",
                                "PatchCore's pool drawn per photo, on")
    elif args.coreset_sizes:
        studied, name, title = "the memory bank's size", "patchcore_coreset", "PatchCore's memory bank size, on"
    elif args.smoothing:
        studied, name, title = ("its maps' smoothing (thresholds calibrated again for each)", "patchcore_smoothing",
                                "PatchCore's map smoothing, on")
    else:
        studied, name, title = "its input's shorter side", "patchcore_size", "PatchCore's input size, chosen on"
    bank = "" if args.coreset_sizes else f", memory bank {args.coreset_size:,} rows"
    column = "fit" if args.coreset_sizes or args.fit_seeds else "pool" if args.photo_coreset else "side"
    markdown = (f"PatchCore (Lite0 features{bank}) by {studied}, "
                f"scored on the localiser's validation photos ({len(rows) - defective} intact, {defective} labelled "
                f"defects), never on the test split.\n\n{table(reports, times).replace('| method |', f'| {column} |')}"
                f"\n\nPer defect type (each type's photos against the intact ones):\n\n{per_type_table(reports)}")
    print(markdown)
    record(name, f"{title} validation photos (magnetic tiles)", markdown, reports)
    return 0


if __name__ == "__main__":
    sys.exit(run(lambda: main()))
