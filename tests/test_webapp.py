import time
from pathlib import Path

import numpy as np
import pytest

from browser import CHROMEDRIVER, CHROMIUM, chromium, running_app, upload, wait_for

from defect_tf.apps.web_page import DefectApp, attribute_table
from defect_tf.bundle.store import load_bundle
from defect_tf.inference.predictor import Predictor


@pytest.fixture(scope="module")
def predictor(trained_output):
    output, _, _ = trained_output
    return Predictor(load_bundle(output))


def image_with_a_detection(predictor, tiny_demo):
    root, table = tiny_demo
    predictions, _ = predictor.predict([str(root / "images" / name) for name in table.images])
    return next(p for p in predictions if p.detected)


def test_analyse_returns_the_table_heatmaps_and_a_message(predictor, tiny_demo):
    prediction = image_with_a_detection(predictor, tiny_demo)
    photo, table, gallery, message = DefectApp(predictor).analyse(prediction.image)
    assert photo.shape == (48, 48, 3)
    assert table.count("<tr") == 1 + 4 and table.count("DETECTED") == len(prediction.detected)
    assert [caption.split(" ")[0] for _, caption in gallery] == prediction.detected
    assert all(picture.shape == (48, 48, 3) and picture.dtype == np.uint8 for picture, _ in gallery)  # photo's size
    assert message.startswith("Detected: " + ", ".join(prediction.detected))


def test_attribute_table_marks_detected_rows_and_escapes_names():
    from defect_tf.inference.predictor import Prediction

    table = attribute_table(Prediction("x.png", {"a<b": 0.9, "c": 0.1}, ["a<b"]), {"a<b": 0.5, "c": 0.5})
    assert "<td>a&lt;b</td><td>0.900</td><td>0.500</td><td>DETECTED</td>" in table
    assert "<td>c</td><td>0.100</td><td>0.500</td><td>no</td>" in table


def test_uploads_that_are_too_large_or_not_images_get_a_message(predictor, tmp_path):
    app = DefectApp(predictor, max_upload_mb=0.001)
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 2000)
    assert app.analyse(str(big)) == (None, "", [], "**big.png** is larger than the 0.001 MB upload limit.")
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    assert app.analyse(str(text))[3] == ("**notes.txt** cannot be read: not an image (JPEG, PNG, BMP, GIF, WebP or "
                                         "TIFF).")


@pytest.mark.browser
@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; "
                           ".ci/run installs them)")
def test_the_page_in_a_real_browser(trained_output, predictor, tiny_demo, tmp_path):
    from selenium.webdriver.common.by import By

    output, _, _ = trained_output
    detected = image_with_a_detection(predictor, tiny_demo)
    large = tmp_path / "large.jpg"
    large.write_bytes(b"\xff\xd8" + b"\0" * 1_200_000)
    not_image = tmp_path / "readme.txt"
    not_image.write_text("hello")
    with running_app("--model", str(output), "--max-upload-mb", "1") as url, chromium() as driver:
        driver.get(url)
        wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))
        upload(driver, detected.image)
        wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#attribute-table tbody tr"))
        rows = [row.text for row in driver.find_elements(By.CSS_SELECTOR, "#attribute-table tbody tr")]
        assert [row.split()[0] for row in rows] == ["scratch", "dent", "crack", "stain"]
        assert sum("DETECTED" in row for row in rows) == len(detected.detected)
        heatmaps = wait_for(driver, lambda d: [img for img in d.find_elements(By.CSS_SELECTOR, "#heatmaps img")
                                               if img.get_property("naturalWidth") > 0])
        assert len(heatmaps) == len(detected.detected)
        assert driver.find_element(By.CSS_SELECTOR, "#photo img").get_property("naturalWidth") == 48
        assert "Detected: " in driver.find_element(By.ID, "message").text

        driver.find_element(By.CSS_SELECTOR, "#upload button[aria-label='Clear']").click()
        upload(driver, not_image)
        wait_for(driver, lambda d: "cannot be read: not an image" in d.find_element(By.ID, "message").text)
        driver.find_element(By.CSS_SELECTOR, "#upload button[aria-label='Clear']").click()
        upload(driver, large)  # refused before it is sent: Gradio checks --max-upload-mb in the page, then the server
        wait_for(driver, lambda d: 'exceed the maximum allowed size of 1.0 Mb: "large.jpg"'
                 in d.find_element(By.TAG_NAME, "body").text)
        assert "Traceback" not in driver.page_source

        samples = [b for b in driver.find_elements(By.TAG_NAME, "button") if b.text.startswith("surface_")]
        assert len(samples) == 4  # the model's own test images, served from the app's private copies
        samples[0].click()
        wait_for(driver, lambda d: d.find_element(By.ID, "message").text.startswith(("Detected: ", "No defect")))

        hosts = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).host)")
        assert set(hosts) <= {url.split("/")[2]}, "the page fetched something from outside the app"


def test_a_photo_over_100_megapixels_is_named_as_too_large_not_as_not_an_image(predictor, tmp_path):
    from PIL import Image

    Image.new("1", (12000, 12000)).save(tmp_path / "bomb.png")  # 144 megapixels in a few kilobytes
    assert DefectApp(predictor).analyse(str(tmp_path / "bomb.png"))[3] == (
        "**bomb.png** is too large to read: 12000x12000 is larger than 100 megapixels; downscale it first.")


def files_under(folder):
    return {path for path in folder.rglob("*") if path.is_file()}


def test_the_page_serves_no_file_beside_a_sample_and_stores_nothing_of_an_oversized_upload(trained_output, tiny_demo,
                                                                                            tmp_path):
    import httpx

    output, _, _ = trained_output
    root, table = tiny_demo
    data = tmp_path / "data"
    data.mkdir()
    sample = data / "sample.png"
    sample.write_bytes((root / "images" / table.images[0]).read_bytes())
    secret = data / "id_rsa"
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    private = tmp_path / "tmp"
    private.mkdir()
    with running_app("--model", str(output), "--samples", str(sample), "--max-upload-mb", "1", "--keep-uploads", "2",
                     env={"TMPDIR": str(private)}) as url:
        owner_files = list(private.glob("defect_tf-web-*/owner.pid"))  # the app's own folder: only uploads served
        assert len(owner_files) == 1
        for path in (secret, sample, output / "bundle" / "bundle.json", *owner_files):
            response = httpx.get(f"{url}gradio_api/file={path}")
            assert response.status_code == 403, (path, response.status_code)
            assert "PRIVATE KEY" not in response.text

        before = files_under(private)
        response = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.png", b"\0" * 1_500_000)})
        assert response.status_code == 413 and "maximum allowed size" in response.text
        assert files_under(private) == before  # refused while it arrived: nothing of it stored

        response = httpx.post(f"{url}gradio_api/upload", files={"files": ("small.png", sample.read_bytes())})
        assert response.status_code == 200
        stored = Path(response.json()[0])
        assert stored.is_file() and private in stored.parents
        deadline = time.time() + 30
        while stored.exists():  # deleted a little after --keep-uploads seconds
            assert time.time() < deadline, "the upload was not deleted"
            time.sleep(0.5)
    assert files_under(private) == set()  # the app's private folder goes with it


def test_a_multiclass_model_shows_its_one_class_and_its_heatmap(tmp_path):
    from PIL import Image

    from defect_tf.bundle.metadata import BundleMetadata
    from defect_tf.bundle.store import save_bundle
    from defect_tf.models.classifier import build_classifier

    (tmp_path / "model").mkdir()
    save_bundle(tmp_path / "model", build_classifier("small_cnn", 3, 32, None),
                BundleMetadata(["crack", "dent", "good"], 32, [], task="multiclass", backbone="small_cnn"))
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(photo)
    _, table, gallery, message = DefectApp(Predictor(load_bundle(tmp_path / "model"))).analyse(str(photo))
    assert table.count("DETECTED") == 1 and table.count("highest wins") == 3
    (chosen,) = [caption.split(" ")[0] for _, caption in gallery]
    assert message.startswith(f"Class: {chosen}.") and chosen in ("crack", "dent", "good")


def test_a_photo_wider_than_webp_allows_is_shown_scaled_down(untrained_output, tmp_path):
    import gradio as gr
    from PIL import Image

    from defect_tf.limits import MAX_DISPLAY_SIDE

    bundle = load_bundle(untrained_output)
    bundle.metadata.thresholds = [0.0] * len(bundle.attributes)  # every attribute detected: a heatmap each
    Image.new("RGB", (20000, 30), (90, 90, 90)).save(tmp_path / "long.png")  # WebP, the page's format, stops at 16383
    photo, _, gallery, message = DefectApp(Predictor(bundle)).analyse(str(tmp_path / "long.png"))
    assert message.startswith("Detected: ") and len(gallery) == len(bundle.attributes)
    assert photo.shape == (3, MAX_DISPLAY_SIDE, 3)  # 30 x 20000 scaled by 2048 / 20000, rounded
    assert all(picture.shape == photo.shape for picture, _ in gallery)
    gr.Image(format="webp").postprocess(photo)  # what failed before: "exceeds WebP limit"


def test_given_an_exported_model_file_the_page_answers_with_it_and_explains_with_keras(exported_output):
    from defect_tf.runtime.select import open_inferencer

    output, data = exported_output
    photo = str(sorted(data.iterdir())[0])
    keras_app = DefectApp(Predictor(load_bundle(output)))
    onnx_app = DefectApp(Predictor(load_bundle(output)), inferencer=open_inferencer(output / "bundle" / "model.onnx"))
    keras_answer, onnx_answer = keras_app.analyse(photo), onnx_app.analyse(photo)
    assert onnx_answer[3] == keras_answer[3]  # the same message: the same attributes detected
    assert len(onnx_answer[2]) == len(keras_answer[2])  # a heatmap for each, from the Keras model
