"""The service's limits hold before a body is stored: the request-size limit stops reading a body the moment the
bytes that arrived pass it (or at once from its Content-Length), and a batch waits a bounded time for company."""

import asyncio

import numpy as np

from defect_tf.apps.service import Batcher, BodyLimit


def exchange(middleware_limit: int, chunks: list[bytes], headers: list) -> tuple[int, list[dict], int]:
    """Run BodyLimit around an app that reads the whole body: (chunks pulled, messages sent, bytes the app saw)."""
    pulled, sent, seen = [0], [], [0]

    async def app(scope, receive, send):
        while True:
            message = await receive()
            seen[0] += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive():
        index = pulled[0]
        pulled[0] += 1
        return {"type": "http.request", "body": chunks[index], "more_body": index + 1 < len(chunks)}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": headers}
    asyncio.run(BodyLimit(app, middleware_limit)(scope, receive, send))
    return pulled[0], sent, seen[0]


def test_a_streamed_body_stops_being_read_once_it_passes_the_limit():
    pulled, sent, _ = exchange(250, [b"x" * 100] * 50, [])
    assert pulled == 3  # 300 bytes > 250: the other 47 chunks are never read
    assert sent[0]["status"] == 413 and b"over the" in sent[1]["body"]


def test_a_declared_length_over_the_limit_is_refused_before_a_byte_is_read():
    pulled, sent, _ = exchange(250, [b"x" * 100] * 50, [(b"content-length", b"5000")])
    assert pulled == 0 and sent[0]["status"] == 413
    pulled, sent, _ = exchange(250, [b"x"], [(b"content-length", b"-1")])
    assert pulled == 0 and sent[0]["status"] == 400


def test_a_body_within_the_limit_reaches_the_app_whole():
    pulled, sent, seen = exchange(10_000, [b"x" * 100] * 50, [(b"content-length", b"5000")])
    assert (pulled, sent[0]["status"], seen) == (50, 200, 5000)


def test_requests_that_arrive_together_share_one_forward_pass_and_get_their_own_rows():
    calls = []

    def forward(batch):
        calls.append(len(batch))
        return batch[:, :1] * 2

    async def together():
        batcher = Batcher(forward, max_batch=8, wait=0.05)
        worker = asyncio.create_task(batcher.run())
        await asyncio.sleep(0)
        results = await asyncio.gather(*(batcher.submit(np.full((size, 1), float(size))) for size in (1, 2, 3)))
        worker.cancel()
        return results

    results = asyncio.run(together())
    assert calls == [6] and [result[:, 0].tolist() for result in results] == [[2.0], [4.0, 4.0], [6.0, 6.0, 6.0]]
