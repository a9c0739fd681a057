"""Deployment: Keras vs SavedModel vs ONNX Runtime vs LiteRT (float32, dynamic int8, full int8) on trained bundles,
and the HTTP service under load.

For each bundle (e.g. `make demo`'s Lite0 and a B0 trained the same way), every format is exported into a copy, then
measured: cold start (`inference.py` on one photo from the shell: wall time and peak memory), batch-1 latency from a
decoded photo (the full path: resize, forward, decision) against the bare runtime call, batch-32 throughput from
image files (decoding in parallel) against the bare runtime on decoded arrays, file size, parity with Keras on the
test split and int8's macro F1. Latencies are measured in interleaved rounds (every runtime in each round), since
this shared machine's speed drifts. Figures are also given as ratios to ONNX Runtime's.

    python benchmarks/deploy.py --models outputs runs/b0 [--work DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import ROOT, number, record, resident_mb, run, running_service, work_folder

from defect_tf.bundle.layout import find_bundle, read_metadata
from defect_tf.export.exporter import export_bundle
from defect_tf.runtime.images import model_input, resize, upright_photo
from defect_tf.runtime.select import open_inferencer

# arm -> (export format, quantization, runtime); "keras" exports nothing
ARMS = {"Keras": (None, "none", "keras"), "SavedModel": ("saved_model", "none", None),
        "ONNX Runtime": ("onnx", "none", "onnx"), "LiteRT fp32": ("litert", "none", "litert"),
        "LiteRT int8 dynamic": ("litert", "dynamic", "litert"), "LiteRT int8 full": ("litert", "full", "litert")}
ROUNDS, CALLS_PER_ROUND = 10, 20


def prepare(bundle_dir: Path, work: Path) -> dict[str, Path]:
    """A copy of the bundle's output folder per arm, each with its export (the copy holds one model per format)."""
    copies = {}
    for arm, (format_name, quantization, _) in ARMS.items():
        copy = work / f"{bundle_dir.parent.name}_{arm.replace(' ', '_')}"
        if not copy.exists():
            shutil.copytree(bundle_dir.parent, copy, ignore=shutil.ignore_patterns("checkpoint", ".defect_tf.lock"))
            if format_name:
                export_bundle(copy, format_name, quantization, accept_drop=True)
        copies[arm] = copy
    return copies


def cold_start(copy: Path, runtime: str, photo: str) -> tuple[float, float]:
    """(wall seconds, peak MB) of `python inference.py PHOTO --runtime R` from process start to exit. The peak is
    measured by /usr/bin/time around it: a child forked from this process would count this process's memory too."""
    with tempfile.NamedTemporaryFile("r") as peak:
        started = time.perf_counter()
        status = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", peak.name, sys.executable,
                                 str(ROOT / "inference.py"), photo, "--model", str(copy), "--runtime", runtime],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        wall = time.perf_counter() - started
        if status:
            raise RuntimeError(f"inference.py --runtime {runtime} failed on {copy}")
        return wall, int(peak.read().split()[-1]) / 1024


def saved_model_forward(copy: Path):
    from defect_tf.export.saved_model_writer import run as loaded

    return loaded(find_bundle(copy) / "saved_model")


def interleaved_latency(calls: dict, argument_of: dict) -> dict[str, float]:
    """Median milliseconds per call of each function, measured in interleaved rounds."""
    times = {name: [] for name in calls}
    for name, function in calls.items():  # warm-up
        for _ in range(5):
            function(argument_of[name])
    for _ in range(ROUNDS):
        for name, function in calls.items():
            started = time.perf_counter()
            for _ in range(CALLS_PER_ROUND):
                function(argument_of[name])
            times[name].append(1000 * (time.perf_counter() - started) / CALLS_PER_ROUND)
    return {name: statistics.median(values) for name, values in times.items()}


def measure_bundle(bundle_dir: Path, work: Path, photos: list[str]) -> dict:
    copies = prepare(bundle_dir, work)
    metadata = read_metadata(find_bundle(bundle_dir))
    size = metadata.image_size
    inferencers = {arm: open_inferencer(copies[arm], runtime) for arm, (_, _, runtime) in ARMS.items() if runtime}
    photo = upright_photo(photos[0])
    decoded_input = resize(photo, size)[None]
    batch = np.stack([model_input(path, size) for path in photos[:32]])

    def full_path(inferencer):
        return lambda picture: inferencer.postprocess(["photo"], inferencer.forward(resize(picture, size)[None]))

    calls, arguments = {}, {}
    for arm, inferencer in inferencers.items():
        calls[f"{arm}: full path"], arguments[f"{arm}: full path"] = full_path(inferencer), photo
        calls[f"{arm}: bare"], arguments[f"{arm}: bare"] = inferencer.forward, decoded_input
    saved = saved_model_forward(copies["SavedModel"])
    calls["SavedModel: bare"], arguments["SavedModel: bare"] = saved, decoded_input
    latency = interleaved_latency(calls, arguments)

    figures = {}
    for arm, (format_name, quantization, runtime) in ARMS.items():
        record_ = metadata_of(copies[arm]).export(format_name) if format_name else None
        model_file = (find_bundle(copies[arm]) / (record_.file if record_ else "model.keras"))
        row = {"file_mb": _size(model_file) / 1e6, "bare_ms": latency[f"{arm}: bare"],
               "parity": record_.parity if record_ else None}
        if runtime:
            inferencer = inferencers[arm]
            row["full_ms"] = latency[f"{arm}: full path"]
            started = time.perf_counter()
            inferencer.predict(photos, batch_size=32)
            row["files_per_s"] = len(photos) / (time.perf_counter() - started)
            started = time.perf_counter()
            for start in range(0, len(photos), 32):
                inferencer.forward(batch[: min(32, len(photos) - start)])
            row["bare_per_s"] = len(photos) / (time.perf_counter() - started)
            walls, peaks = zip(*(cold_start(copies[arm], runtime, photos[0]) for _ in range(3)))
            row["cold_s"], row["peak_mb"] = statistics.median(walls), max(peaks)
        figures[arm] = row
    return {"backbone": metadata.backbone, "image_size": size, "task": metadata.task, "arms": figures}


def metadata_of(copy: Path):
    return read_metadata(find_bundle(copy))


def _size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file()) if path.is_dir() else \
        path.stat().st_size


def service_load(bundle_dir: Path, photos: list[str], requests: int) -> dict:
    """requests/s and p50 / p99 latency of `serve.py` at concurrency 1, 8 and 32, and its memory before and after."""
    import httpx

    with running_service(["--model", str(bundle_dir)]) as (url, server):
        data = [(Path(path).name, Path(path).read_bytes()) for path in photos[:16]]

        async def level(concurrency: int, count: int) -> dict:
            latencies = []
            async with httpx.AsyncClient(base_url=url, timeout=120) as session:
                async def one(index: int):
                    name, content = data[index % len(data)]
                    started = time.perf_counter()
                    response = await session.post("/predict", files=[("image", (name, content, "image/png"))])
                    response.raise_for_status()
                    latencies.append(1000 * (time.perf_counter() - started))

                started = time.perf_counter()
                for start in range(0, count, concurrency):
                    await asyncio.gather(*(one(start + k) for k in range(min(concurrency, count - start))))
                seconds = time.perf_counter() - started
            return {"requests_per_s": count / seconds, "p50_ms": float(np.percentile(latencies, 50)),
                    "p99_ms": float(np.percentile(latencies, 99))}

        asyncio.run(level(32, 300))  # warm-up: the runtime's memory pools grow to the largest batch once
        before = resident_mb(server.pid)
        levels = {concurrency: asyncio.run(level(concurrency, requests // 3)) for concurrency in (1, 8, 32)}
        return {"levels": levels, "memory_before_mb": before, "memory_after_mb": resident_mb(server.pid),
                "requests": 3 * (requests // 3)}


def table(result: dict) -> list[str]:
    onnx = result["arms"]["ONNX Runtime"]
    rows = ["| runtime | file | cold start | peak memory | batch-1 full path (bare) | vs ONNX | batch-32 from files "
            "(bare on arrays) | vs ONNX | max \\|Δp\\| | decisions changed | macro F1 (Keras → export) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for arm, row in result["arms"].items():
        parity = row.get("parity") or {}
        full = f"{row['full_ms']:.1f} ms ({row['bare_ms']:.1f})" if "full_ms" in row else f"- ({row['bare_ms']:.1f} ms)"
        speed = (f"{row['files_per_s']:.0f}/s ({row['bare_per_s']:.0f}/s)" if "files_per_s" in row else "-")
        rows.append("| " + " | ".join([
            arm, f"{row['file_mb']:.1f} MB", f"{row['cold_s']:.2f} s" if "cold_s" in row else "-",
            f"{row['peak_mb']:.0f} MB" if "peak_mb" in row else "-", full,
            f"{row.get('full_ms', row['bare_ms']) / onnx['full_ms']:.2f}x",
            speed, f"{row['files_per_s'] / onnx['files_per_s']:.2f}x" if "files_per_s" in row else "-",
            f"{parity['max_abs_difference']:.1e}" if parity else "0 (itself)",
            str(parity.get("decisions_changed", 0)) if parity else "-",
            (f"{number(parity['macro_f1_keras'])} → {number(parity['macro_f1_export'])}"
             if "macro_f1_keras" in parity else "-")]) + " |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="trained output folders (bundles)")
    parser.add_argument("--photos", type=int, default=320, help="test photos for throughput")
    parser.add_argument("--requests", type=int, default=3000, help="requests of the service's load test")
    parser.add_argument("--work", help="folder for the copies (default: a temporary folder)")
    args = parser.parse_args(argv)
    work = work_folder(args.work, "deploy_")
    sections, figures = [], {}
    for model in args.models:
        bundle_dir = find_bundle(model)
        metadata = read_metadata(bundle_dir)
        photos = [str(Path(metadata.data_dir) / name) for name in metadata.split.get("test", [])]
        photos = (photos * (args.photos // max(1, len(photos)) + 1))[: args.photos]
        result = measure_bundle(bundle_dir, work, photos)
        figures[model] = result
        sections.append(f"### {result['backbone']}, {result['image_size']} px, {result['task']} (`{model}`)\n\n"
                        + "\n".join(table(result)))
        print(sections[-1], flush=True)
    first = find_bundle(args.models[0])
    onnx_copy = work / f"{first.parent.name}_ONNX_Runtime"
    meta = read_metadata(first)
    photos = [str(Path(meta.data_dir) / name) for name in meta.split.get("test", [])]
    load = service_load(onnx_copy, photos, args.requests)
    figures["service"] = load
    load_rows = ["| concurrency | requests/s | p50 | p99 |", "|---:|---:|---:|---:|"] + [
        f"| {concurrency} | {row['requests_per_s']:.0f} | {row['p50_ms']:.1f} ms | {row['p99_ms']:.1f} ms |"
        for concurrency, row in load["levels"].items()]
    sections.append(f"### The service (`serve.py`, ONNX Runtime, `{args.models[0]}`), {load['requests']} requests of "
                    f"one photo each, client and server on the same 2 cores\n\n" + "\n".join(load_rows)
                    + f"\n\nServer memory {load['memory_before_mb']:.0f} MB before the {load['requests']} requests, "
                    f"{load['memory_after_mb']:.0f} MB after.")
    print(sections[-1])
    markdown = ("Cold start: `python inference.py PHOTO --runtime R` from process start to exit, median of 3, peak "
                "memory its own. Batch-1: the full path from a decoded photo (resize, forward, decision) and, in "
                "brackets, the bare runtime call on a ready input; medians of interleaved rounds. Batch-32: "
                f"{args.photos} test photos from their files (decoded in parallel), and in brackets the bare runtime "
                "on decoded arrays. Parity on the bundle's test split (recorded in its bundle.json).\n\n"
                + "\n\n".join(sections))
    record("deploy", "Deployment: export formats and runtimes, and the service under load", markdown, figures)
    return 0


if __name__ == "__main__":
    sys.exit(run(lambda: main()))
