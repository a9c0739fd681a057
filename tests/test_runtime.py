"""The runtime without TensorFlow: its pre-processing gives the model the input training's TensorFlow path gives
(photos larger and smaller than the model's size, every EXIF orientation, 16-bit, palette, greyscale, CMYK, JPEG,
WebP, TIFF), and its decisions are the task's."""

import numpy as np
import pytest
from PIL import Image

from defect_tf.bundle.metadata import BundleMetadata
from defect_tf.data.images import read_image
from defect_tf.runtime.images import model_input, turn_upright
from defect_tf.runtime.predictions import label

TOLERANCE = 0.01  # grey levels (of 255): measured 0.0013 at most


def photos(folder):
    """Photos as users have them, each saved in one format and mode."""
    rng = np.random.default_rng(0)
    big = (rng.random((300, 420, 3)) * 255).astype(np.uint8)
    small = (rng.random((50, 70, 3)) * 255).astype(np.uint8)
    made = {"larger.png": (big, {}), "smaller.png": (small, {}), "square.png": (big[:64, :64], {}),
            "photo.jpg": (big, {"quality": 90}), "photo.webp": (big, {"quality": 80}), "photo.bmp": (big, {}),
            "photo.tif": (big, {})}
    for name, (array, options) in made.items():
        Image.fromarray(array).save(folder / name, **options)
    Image.fromarray(big).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(big).convert("P").save(folder / "palette.png")
    Image.fromarray(big).convert("P").save(folder / "palette.gif")
    Image.fromarray(big).convert("L").save(folder / "grey.png")
    Image.fromarray((rng.random((90, 60)) * 65535).astype(np.uint16)).save(folder / "sixteen_bit_grey.png")
    import cv2

    cv2.imwrite(str(folder / "sixteen_bit.png"), (rng.random((90, 60, 3)) * 65535).astype(np.uint16))
    for orientation in range(1, 9):
        image = Image.fromarray(big[:90, :150])
        exif = image.getexif()
        exif[0x0112] = orientation
        image.save(folder / f"exif_{orientation}.jpg", exif=exif)
    return sorted(path.name for path in folder.iterdir())


def test_the_runtime_gives_the_model_what_training_gives_it(tmp_path):
    names = photos(tmp_path)
    assert len(names) == 21
    for name in names:
        ours = model_input(tmp_path / name, 64)
        tensorflow = read_image(str(tmp_path / name), 64)
        assert ours.dtype == np.float32 and ours.shape == (64, 64, 3)
        assert np.abs(ours - tensorflow).max() < TOLERANCE, name


@pytest.mark.parametrize("orientation", range(1, 9))
def test_turning_upright_is_pillows_exif_transpose(orientation):
    from PIL import ImageOps

    array = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(Image.open(_saved(image, exif))))
    np.testing.assert_array_equal(turn_upright(array, orientation), expected)


def _saved(image, exif):
    import io

    stream = io.BytesIO()
    image.save(stream, "PNG", exif=exif)
    stream.seek(0)
    return stream


def test_decisions_follow_the_task_and_never_name_an_untrained_attribute():
    metadata = BundleMetadata(["a", "b", "c"], 32, [0.5, 0.2, 0.9], untrained=["c"])
    predictions = label(["x.png"], np.array([[0.6, 0.1, 0.95]]), metadata)
    assert predictions[0].detected == ["a"] and predictions[0].probabilities == {"a": 0.6, "b": 0.1, "c": 0.95}
    classes = BundleMetadata(["good", "dent", "scratch"], 32, [], task="multiclass", untrained=["scratch"])
    assert label(["y.png"], np.array([[0.2, 0.3, 0.5]]), classes)[0].detected == ["dent"]
