"""The HTTP service: the JSON of inference.py --json for one or many images; every malformed request a 4xx with a
one-line reason while the service keeps serving; limits held before a body is stored; no file of the server
reachable. And under load (a real server in a subprocess): every good request answered correctly among malformed
ones, at concurrency 1, 8 and 32, with memory flat."""

import asyncio
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from defect_tf.apps.service import ServiceLimits, create_app
from defect_tf.runtime.select import open_inferencer

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration  # the model is exported to ONNX first


@pytest.fixture(scope="module")
def exported(exported_output):
    return exported_output


@pytest.fixture(scope="module")
def client(exported):
    output, _ = exported
    inferencer = open_inferencer(output)
    with TestClient(create_app(inferencer, ServiceLimits(max_request_bytes=2_000_000, max_files=4,
                                                         max_concurrent=8))) as test_client:
        yield test_client, inferencer


def photos(data: Path, count: int) -> list[Path]:
    return sorted(data.iterdir())[:count]


def test_predict_answers_as_inference_json_does(client, exported):
    test_client, inferencer = client
    _, data = exported
    files = photos(data, 3)
    response = test_client.post("/predict", files=[("image", (path.name, path.read_bytes(), "image/png"))
                                                   for path in files])
    assert response.status_code == 200
    document = response.json()
    assert document["runtime"] == "ONNX Runtime" and document["errors"] == []
    expected, _ = inferencer.predict([str(path) for path in files])
    assert [p["image"] for p in document["predictions"]] == [path.name for path in files]
    for ours, theirs in zip(document["predictions"], expected):
        assert ours["detected"] == theirs.detected
        np.testing.assert_allclose(list(ours["probabilities"].values()), list(theirs.probabilities.values()),
                                   atol=1e-6)


def test_health_and_model_describe_the_service(client):
    test_client, inferencer = client
    assert test_client.get("/health").json() == {"status": "ok", "runtime": "ONNX Runtime"}
    model = test_client.get("/model").json()
    assert model["attributes"] == inferencer.metadata.attributes and model["model_file"] == "model.onnx"
    assert str(inferencer.location) not in str(model)  # no path of the server


def bomb_gif() -> bytes:
    header = b"GIF89a" + struct.pack("<HHBBB", 7000, 7000, 0x80, 0, 0) + bytes(6)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return header + frame * 200 + b"\x3b"


def malformed_requests(data: Path) -> list[tuple[dict, int, str]]:
    """(httpx request arguments, status, words of the reason) for requests a service must refuse."""
    good = photos(data, 1)[0].read_bytes()
    multipart_start = b"--xyz\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n"
    return [
        ({"content": b"not multipart", "headers": {"content-type": "text/plain"}}, 415, "multipart/form-data"),
        ({"data": {"field": "value"}}, 415, "multipart/form-data"),
        ({"files": {"field": (None, "value")}}, 400, "no image file in the request"),
        ({"files": [("image", ("notes.txt", b"hello", "text/plain"))]}, 400, "not an image"),
        ({"files": [("image", ("empty.png", b"", "image/png"))]}, 400, "an empty file"),
        ({"files": [("image", ("bomb.gif", bomb_gif(), "image/gif"))]}, 400, "would decode to over 100 megapixels"),
        ({"files": [("image", ("cut.png", good[: len(good) // 2], "image/png"))]}, 400, "cannot read image"),
        ({"files": [("image", (f"{i}.png", good, "image/png")) for i in range(5)]}, 400, "Too many"),
        ({"files": [("image", ("big.png", b"\0" * 2_500_000, "image/png"))]}, 413, "over the"),
        ({"content": multipart_start + good[:40], "headers": {"content-type": "multipart/form-data; boundary=xyz"}},
         400, "no image file"),  # cut off inside its only part: no complete file arrived
    ]


def test_every_malformed_request_is_a_4xx_with_a_one_line_reason_and_the_service_keeps_serving(client, exported):
    test_client, _ = client
    _, data = exported
    good = photos(data, 1)[0]
    for arguments, status, words in malformed_requests(data):
        response = test_client.post("/predict", **arguments)
        assert response.status_code == status, (arguments.keys(), response.text)
        reason = response.json()["error"]
        assert words in reason and "\n" not in reason
        answer = test_client.post("/predict", files=[("image", (good.name, good.read_bytes(), "image/png"))])
        assert answer.status_code == 200 and answer.json()["predictions"][0]["image"] == good.name


def test_no_file_of_the_server_is_reachable(client):
    test_client, _ = client
    for path in ("/docs", "/redoc", "/openapi.json", "/../../etc/passwd", "/static/model.onnx", "/model.onnx",
                 "/bundle/bundle.json"):
        assert test_client.get(path).status_code == 404, path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def resident_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


@pytest.fixture(scope="module")
def server(exported):
    """serve.py in a subprocess on a free port, with the limits of the in-process client: its URL."""
    output, _ = exported
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "serve.py"), "--model", str(output), "--port", str(port),
                                "--max-files", "4", "--max-request-mb", str(2_000_000 / 2**20)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    yield url, process
    process.terminate()
    process.communicate(timeout=30)


def test_a_body_larger_than_the_limit_is_refused_while_it_arrives(server):
    url, _ = server
    def stream():  # no Content-Length: the body is counted as it arrives (a file part that never ends)
        yield b"--xyz\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n"
        for _ in range(100):
            yield b"x" * 100_000

    try:
        response = httpx.post(f"{url}/predict", content=stream(),
                              headers={"content-type": "multipart/form-data; boundary=xyz"}, timeout=30)
        assert response.status_code == 413 and "over the" in response.json()["error"]
    except httpx.TransportError:  # or the server closed the connection on the rest of the body
        pass
    assert httpx.get(f"{url}/health").status_code == 200  # (that no more is read: tests/test_service_limits.py)


def test_under_load_every_good_request_is_answered_right_among_malformed_ones_with_memory_flat(exported, server):
    output, data = exported
    url, process = server
    good = photos(data, 8)
    expected = {path.name: result.detected
                for path, result in zip(good, open_inferencer(output).predict([str(p) for p in good])[0])}
    bad = malformed_requests(data)
    asyncio.run(_load(url, good, expected, bad, requests=300))  # warm-up, then the measured run
    before = resident_kb(process.pid)
    counts = asyncio.run(_load(url, good, expected, bad, requests=5001))
    after = resident_kb(process.pid)
    assert counts == {"good": 5001 - 251, "bad": 251}  # every 20th of 5001 malformed, every good one right
    assert after - before < 30_000, (before, after)  # kB: flat, not growing with the requests


async def _load(url: str, good: list[Path], expected: dict, bad: list, requests: int) -> dict:
    """`requests` requests at concurrency 1, 8 and 32 (a third each); every 20th is a malformed one."""
    counts = {"good": 0, "bad": 0}
    async with httpx.AsyncClient(base_url=url, timeout=60) as session:
        async def one(index: int):
            if index % 20 == 0:
                arguments, status, _ = bad[(index // 20) % len(bad)]
                response = await session.post("/predict", **arguments)
                assert response.status_code == status
                counts["bad"] += 1
                return
            path = good[index % len(good)]
            response = await session.post("/predict", files=[("image", (path.name, path.read_bytes(), "image/png"))])
            assert response.status_code == 200, response.text
            assert response.json()["predictions"][0]["detected"] == expected[path.name]
            counts["good"] += 1

        index = 0
        for concurrency in (1, 8, 32):
            share = requests // 3
            for start in range(0, share, concurrency):
                await asyncio.gather(*(one(index + k) for k in range(min(concurrency, share - start))))
                index += min(concurrency, share - start)
    return counts


def test_serving_to_the_network_warns_and_a_missing_model_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "serve.py"), "--model", str(tmp_path), "--port",
                             str(free_port())], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "no model bundle in" in result.stderr and os.path.isdir(tmp_path)
