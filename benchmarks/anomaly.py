"""Anomaly localisation on the magnetic tiles (`../shared/data/anomaly`): localisers fitted on intact photos only,
scored on the test split (190 intact + 392 defective photos with pixel masks): image AUROC and F1 at the calibrated
threshold, pixel AUROC, PRO (to 30% false-positive rate), IoU and Dice of the outlines, fit time, ms per photo;
overall and per defect type.

    python benchmarks/anomaly.py [--image-size 256] [--coreset-size 10000] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import DEFAULT_DATA_ROOT, number, record, run, work_folder

from defect_tf.anomaly.training import METRICS_FILE, LocalizerConfig, train_localizer

COLUMNS = ("image_auroc", "f1", "pixel_auroc", "pro", "iou", "dice")


def localizer_arm(folder: Path, output: Path, args) -> dict:
    """One localiser fitted and scored (a finished run in `output` is read, not repeated)."""
    if not (output / METRICS_FILE).is_file():
        started = time.time()
        train_localizer(LocalizerConfig(
            data=str(folder / "images"), labels=str(folder / "labels.txt"), split_file=str(folder / "split.txt"),
            masks=str(folder / "masks"), types=str(folder / "types.txt"), output=str(output), model=args.model,
            image_size=args.image_size, coreset_size=args.coreset_size, seed=args.seed))
        print(f"{output}: {time.time() - started:.0f} s in all")
    return json.loads((output / METRICS_FILE).read_text())


def table(report: dict) -> str:
    rows = [("**all**", report), *report.get("per_type", {}).items()]
    lines = ["| defect type | photos | " + " | ".join(c.replace("_", " ") for c in COLUMNS) + " |",
             "|---|---:|" + "---:|" * len(COLUMNS)]
    for name, figures in rows:
        lines.append(f"| {name} | {figures['photos']} ({figures['defective']} defective) | "
                     + " | ".join(number(figures.get(c)) for c in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(DEFAULT_DATA_ROOT))
    parser.add_argument("--model", default="patchcore")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--coreset-size", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", help="folder for the runs (a rerun there reads finished runs)")
    args = parser.parse_args(argv)
    folder = Path(args.data_root) / "anomaly"
    work = work_folder(args.work, "anomaly-")
    report = localizer_arm(folder, work / f"{args.model}-{args.image_size}-{args.coreset_size}", args)
    markdown = (f"{args.model}, shorter side {args.image_size} px, memory bank {args.coreset_size:,} rows: fitted "
                f"in {report['fit_seconds']:.0f} s on the 686 intact train photos (76 more set the thresholds), "
                f"{report['ms_per_photo']:.0f} ms per test photo. Pixel figures over the photos with masks "
                f"(intact photos: all-zero masks); IoU and Dice of the cleaned outlines, drawn only on photos "
                f"called defective.\n\n{table(report)}")
    print(markdown)
    record(f"anomaly_{args.model}", f"Anomaly localisation on magnetic tiles: {args.model}", markdown, report)
    return 0


if __name__ == "__main__":
    sys.exit(run(lambda: main()))
