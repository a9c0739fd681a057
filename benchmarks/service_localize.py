"""The two-stage service under load: what a photo the classifier calls damaged costs, and what a burst of them
does to the intact photos sent beside them.

The classifier and the localiser of a two-stage run (e.g. `benchmarks/anomaly.py`'s in runs/anomaly-floor) are
copied into one output folder (the localiser in its `localizer/`), both exported to ONNX (`export.py`), and served
by `serve.py --localize`. One photo per request, from the classifier's test split of the magnetic tiles: intact
photos alone, defective photos alone, and the two alternating; one request at a time, then 8 in flight. A
defective photo the classifier calls intact is answered without the localiser, as on the line.

    python benchmarks/service_localize.py --classifier runs/anomaly-floor/classifier
        --localizer runs/anomaly-floor/localizer-192-10000-head [--photos 40] [--requests 80] [--work DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import DEFAULT_DATA_ROOT, ROOT, data_folder, number, record, resident_mb, running_service, work_folder

from defect_tf.anomaly.store import LOCALIZER_DIR
from defect_tf.data.labels import parse_labels
from defect_tf.data.splits import read_split

LEVELS = (("intact", 1), ("defective", 1), ("intact", 8), ("defective", 8), ("mixed", 8))


def two_stage_folder(classifier: Path, localizer: Path, work: Path) -> Path:
    """One output folder holding copies of both stages, exported to ONNX (kept for a rerun with the same --work)."""
    folder = work / "two-stage"
    if not (folder / LOCALIZER_DIR).exists():
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(classifier, folder, ignore=shutil.ignore_patterns("checkpoint", ".defect_tf.lock"))
        shutil.copytree(localizer, folder / LOCALIZER_DIR, ignore=shutil.ignore_patterns("checkpoint", ".defect_tf.lock"))
        subprocess.run([sys.executable, str(ROOT / "export.py"), "--model", str(folder), "--format", "onnx"], check=True)
    return folder


def test_photos(classifier: Path, data: Path, count: int) -> dict[str, list[Path]]:
    """`count` intact and `count` defective photos of the classifier's test split, spread evenly over it."""
    table = parse_labels(data / "labels.txt")
    split = read_split(classifier / "split.txt")
    chosen = {}
    for kind, label in (("intact", 0), ("defective", 1)):
        names = [name for name, values in zip(table.images, table.values)
                 if split.get(name) == "test" and values[0] == label]
        chosen[kind] = [data / "images" / names[int(i * len(names) / count)] for i in range(min(count, len(names)))]
    return chosen


async def load_level(url: str, photos: list[tuple[str, str, bytes]], concurrency: int, count: int) -> dict:
    """`count` requests, `concurrency` in flight: requests/s, and p50 / p99 latency of the photos sent of each
    kind, split by the answer: called intact by the classifier, or called damaged and outlined by the localiser."""
    import httpx

    latencies = {}
    async with httpx.AsyncClient(base_url=url, timeout=300) as session:
        async def one(index: int) -> None:
            kind, name, content = photos[index % len(photos)]
            started = time.perf_counter()
            response = await session.post("/predict", files=[("image", (name, content, "image/jpeg"))])
            response.raise_for_status()
            outlined = response.json()["predictions"][0]["localization"] is not None
            answer = f"{kind}, {'called damaged: outlined' if outlined else 'called intact'}"
            latencies.setdefault(answer, []).append(1000 * (time.perf_counter() - started))

        started = time.perf_counter()
        for start in range(0, count, concurrency):
            await asyncio.gather(*(one(start + k) for k in range(min(concurrency, count - start))))
        seconds = time.perf_counter() - started
    return {"requests_per_s": count / seconds,
            "answers": {answer: {"requests": len(values), "p50_ms": float(np.percentile(values, 50)),
                                 "p99_ms": float(np.percentile(values, 99))}
                        for answer, values in sorted(latencies.items())}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classifier", required=True, help="the stage-1 classifier's output folder")
    parser.add_argument("--localizer", required=True, help="the localiser's output folder")
    parser.add_argument("--data-root", default=str(DEFAULT_DATA_ROOT), help="the folder that holds anomaly/")
    parser.add_argument("--photos", type=int, default=40, help="test photos of each kind")
    parser.add_argument("--requests", type=int, default=80, help="requests per level")
    parser.add_argument("--work", help="folder for the two-stage copy (default: a temporary folder)")
    args = parser.parse_args(argv)
    classifier, localizer = Path(args.classifier), Path(args.localizer)
    folder = two_stage_folder(classifier, localizer, work_folder(args.work, "service_localize_"))
    chosen = test_photos(classifier, data_folder(args.data_root, "anomaly"), args.photos)
    photos = {kind: [(kind, path.name, path.read_bytes()) for path in paths] for kind, paths in chosen.items()}
    photos["mixed"] = [photo for pair in zip(photos["intact"], photos["defective"]) for photo in pair]
    results, rows = {}, []
    with running_service(["--model", str(folder), "--localize"]) as (url, server):
        asyncio.run(load_level(url, photos["mixed"], 8, 16))  # warm-up: both runtimes' first calls
        before = resident_mb(server.pid)
        for kind, concurrency in LEVELS:
            found = asyncio.run(load_level(url, photos[kind], concurrency, args.requests))
            results[f"{kind}, {concurrency} in flight"] = found
            for answer, figures in found["answers"].items():
                rows.append(f"| {kind} | {concurrency} | {number(found['requests_per_s'], 1)} | {answer} | "
                            f"{figures['requests']} | {figures['p50_ms']:.0f} | {figures['p99_ms']:.0f} |")
                print(rows[-1], flush=True)
        after = resident_mb(server.pid)
    markdown = (f"`serve.py --localize` over ONNX exports of both stages; {len(chosen['intact'])} intact and "
                f"{len(chosen['defective'])} defective test photos of the magnetic tiles, one per request, "
                f"{args.requests} requests per level (mixed: the two alternating):\n\n"
                "| photos sent | in flight | requests / s | photo, answer | requests | p50 ms | p99 ms |\n"
                "|---|---:|---:|---|---:|---:|---:|\n" + "\n".join(rows)
                + f"\n\nThe service's memory: {before:.0f} MB after the warm-up, {after:.0f} MB at the end.")
    print(markdown)
    record("service_localize", "The two-stage service under load (serve.py --localize, ONNX)", markdown,
           {"levels": results, "memory_before_mb": before, "memory_after_mb": after})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
