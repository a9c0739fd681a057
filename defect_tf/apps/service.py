"""The HTTP service's application (FastAPI): `POST /predict` (multipart images -> the JSON of `inference.py --json`;
with a localiser, each photo the classifier calls damaged also outlined, as `inference.py --localize --json` does;
a localiser alone outlines every photo its threshold calls defective),
`GET /health`, `GET /model`. The model is loaded once; photos that arrive together are batched (a short, bounded
wait); every limit holds before a request's whole body is stored: its size while it arrives, its files while it is
parsed, its images' pixels from their headers, the requests in flight at once. A bad request gets a 4xx with a
one-line reason and the service keeps serving; it serves no file."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect

from defect_tf.errors import ImageError
from defect_tf.limits import MAX_CONCURRENT_REQUESTS, MAX_FILES_PER_REQUEST, MAX_IMAGE_FILE_BYTES, MAX_REQUEST_MB
from defect_tf.runtime.images import model_input_from_bytes, photo_from_bytes
from defect_tf.runtime.inferencer import BATCH_SIZE, Inferencer

BATCH_WAIT_SECONDS = 0.005  # how long a request waits for others to share its forward pass


@dataclass(frozen=True)
class ServiceLimits:
    max_request_bytes: int = int(MAX_REQUEST_MB * 1024 * 1024)
    max_files: int = MAX_FILES_PER_REQUEST
    max_concurrent: int = MAX_CONCURRENT_REQUESTS
    max_batch: int = BATCH_SIZE
    batch_wait: float = BATCH_WAIT_SECONDS


def error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is refused (413) from its Content-Length, or as soon as
    the bytes that arrived pass it, before the rest is read or stored."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = error(413, f"the request is over the {self.max_bytes / 2**20:g} MB limit")
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await (too_large if length.isdigit() else error(400, "a malformed Content-Length"))(
                scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await too_large(scope, receive, send)


class _TooLarge(Exception):
    pass


class Batcher:
    """Requests that arrive together share one forward pass: each waits at most `wait` seconds for others."""

    def __init__(self, forward, max_batch: int, wait: float):
        self.forward, self.max_batch, self.wait = forward, max_batch, wait
        self.queue: asyncio.Queue | None = None
        self.model_thread = ThreadPoolExecutor(max_workers=1)  # the runtime sets its own threads inside

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.queue = asyncio.Queue()
        while True:
            items = [await self.queue.get()]
            deadline = loop.time() + self.wait
            while sum(len(batch) for batch, _ in items) < self.max_batch:
                try:
                    items.append(await asyncio.wait_for(self.queue.get(), max(0.0, deadline - loop.time())))
                except asyncio.TimeoutError:
                    break
            batch = np.concatenate([batch for batch, _ in items])
            try:
                probabilities = await loop.run_in_executor(self.model_thread, self.forward, batch)
            except Exception as failure:  # the runtime failed: every waiting request learns it
                for _, future in items:
                    if not future.done():
                        future.set_exception(failure)
                continue
            start = 0
            for part, future in items:
                if not future.done():
                    future.set_result(probabilities[start:start + len(part)])
                start += len(part)

    async def submit(self, batch: np.ndarray) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((batch, future))
        return await future


def localizer_description(localizer) -> dict:
    """A localiser as the service describes it: its model, runtime (without its path on the server), thresholds."""
    return {"model": localizer.metadata.model, "runtime": localizer.runtime.split(" (", 1)[0],
            "image_threshold": localizer.metadata.image_threshold,
            "pixel_threshold": localizer.metadata.pixel_threshold}


def model_description(inferencer: Inferencer | None, localizer=None) -> dict:
    """`GET /model`: the classifier's contract and runtime (None without one), and the localiser (None without)."""
    described = {"localizer": None if localizer is None else localizer_description(localizer)}
    if inferencer is None:
        return {"task": "anomaly", "runtime": described["localizer"]["runtime"], **described}
    metadata = inferencer.metadata
    return {"task": metadata.task, "attributes": metadata.attributes, "thresholds": metadata.thresholds_by_attribute(),
            "untrained": metadata.untrained, "image_size": metadata.image_size, "backbone": metadata.backbone,
            "trained_at": metadata.trained_at, "bundle_format": metadata.format, "runtime": inferencer.runtime,
            "model_file": inferencer.model_file.name, **described}


def create_app(inferencer: Inferencer | None, limits: ServiceLimits = ServiceLimits(), localizer=None) -> FastAPI:
    """The service around one loaded classifier (an `Inferencer`) and, as its second stage, a loaded `Localizer`;
    either may be None (not both). Without a classifier every photo goes to the localiser, whose own threshold
    decides, as `inference.py --localize` does."""
    if inferencer is None and localizer is None:
        raise ValueError("a service needs a classifier, a localiser or both")
    if localizer is not None:
        from defect_tf.anomaly.pipeline import stage_one_damaged
    batcher = Batcher(inferencer.forward if inferencer else None, limits.max_batch, limits.batch_wait)
    decoding = ThreadPoolExecutor(max_workers=4)
    # stage 2 on a thread of its own, one photo at a time: the classifier's batches go on while a photo is outlined
    localizing = ThreadPoolExecutor(max_workers=1)
    in_flight = 0
    description = model_description(inferencer, localizer)

    async def lifespan(app):
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()

    app = FastAPI(title="defect_tf", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=limits.max_request_bytes)

    @app.get("/health")
    async def health():
        return {"status": "ok", "runtime": description["runtime"]}

    @app.get("/model")
    async def model():
        return description

    @app.post("/predict")
    async def predict(request: Request):
        nonlocal in_flight
        if in_flight >= limits.max_concurrent:
            return error(503, f"busy: {limits.max_concurrent} requests are in flight; try again shortly")
        in_flight += 1
        try:
            return await _predict(request)
        finally:
            in_flight -= 1

    async def _predict(request: Request):
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return error(415, "send the images as multipart/form-data files (curl -F image=@photo.jpg ...)")
        try:
            form = await request.form(max_files=limits.max_files, max_fields=limits.max_files,
                                      max_part_size=MAX_IMAGE_FILE_BYTES)
        except (MultiPartException, HTTPException) as failure:  # Starlette turns the first into the second
            reason = getattr(failure, "detail", None) or getattr(failure, "message", None) or str(failure)
            return error(400, f"a malformed multipart body ({str(reason).rstrip('.')})")
        except ClientDisconnect:
            return error(400, "the request ended before its body")
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if not files:
            return error(400, "no image file in the request (send them as multipart files: -F image=@photo.jpg)")
        loop = asyncio.get_running_loop()
        uploads = [(upload.filename or f"image_{index}", await upload.read()) for index, upload in enumerate(files)]
        await form.close()

        if inferencer is None:
            return await _localize_alone(uploads)

        def load(name: str, data: bytes):
            try:
                return model_input_from_bytes(data, name, inferencer.metadata.image_size)
            except ImageError as failure:
                return failure

        loaded = await asyncio.gather(*(loop.run_in_executor(decoding, load, name, data) for name, data in uploads))
        readable = [(name, data, item) for (name, data), item in zip(uploads, loaded) if not isinstance(item, ImageError)]
        errors = [str(item) for item in loaded if isinstance(item, ImageError)]
        if not readable:
            return error(400, errors[0] if len(errors) == 1 else f"no readable image: {'; '.join(errors)}")
        probabilities = await batcher.submit(np.stack([item for _, _, item in readable]))
        predictions = inferencer.postprocess([name for name, _, _ in readable], probabilities)
        records = [prediction.as_dict() for prediction in predictions]
        if localizer is not None:
            for record, prediction, (name, data, _) in zip(records, predictions, readable):
                damaged = stage_one_damaged(prediction, description["task"])  # only then is stage 2 run
                record["localization"] = await _locate(
                    await loop.run_in_executor(decoding, photo_from_bytes, data, name), True) if damaged else None
        return JSONResponse({"model": description["model_file"], "runtime": inferencer.runtime,
                             "task": description["task"], "thresholds": description["thresholds"],
                             "untrained": description["untrained"], "predictions": records, "errors": errors})

    async def _localize_alone(uploads: list[tuple[str, bytes]]) -> JSONResponse:
        """The localiser alone, its own image threshold deciding: one whole photo decoded at a time, so a request's
        memory holds one photo however many it sends."""
        records, errors = [], []
        for name, data in uploads:
            try:
                photo = await asyncio.get_running_loop().run_in_executor(decoding, photo_from_bytes, data, name)
            except ImageError as failure:
                errors.append(str(failure))
                continue
            records.append({"image": name, "localization": await _locate(photo, None)})
            del photo
        if not records:
            return error(400, errors[0] if len(errors) == 1 else f"no readable image: {'; '.join(errors)}")
        return JSONResponse({"runtime": description["runtime"], "task": "anomaly", "localizer": description["localizer"],
                             "predictions": records, "errors": errors})

    async def _locate(photo: np.ndarray, outline: bool | None) -> dict:
        """The localiser's answer for a whole photo (outlined when `outline`, or by its own threshold with None),
        run on its own thread, one photo at a time, so the classifier keeps answering meanwhile."""
        found = await asyncio.get_running_loop().run_in_executor(localizing, localizer.locate, photo, outline)
        return found.to_json()

    return app
