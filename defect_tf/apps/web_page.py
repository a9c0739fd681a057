"""The web page (Gradio): upload a photo, see each attribute's probability against its calibrated
threshold, the detected ones marked, and a heatmap per detected attribute.

The bundle is loaded once, when the page is built; every request reuses it. Uploads that are too
large or not images get a one-line message in the page. Nothing is fetched from the internet:
Gradio's default theme serves its fonts itself, and analytics are off.

The page serves only what it means to: Gradio serves files from its upload folder, inside a private
temporary folder of this process (mode 0700, removed when it ends, or by the next page if the process was
killed; io/private_folder.py) holding only uploads, copies of the sample photos and its owner file; no folder
of the user's is ever allowed. Uploads over the limit are refused while they arrive, before anything is
stored, and uploads are deleted a few minutes after they arrive.
"""

from __future__ import annotations

import html
import os
import shutil
from pathlib import Path

from defect_tf.io.private_folder import private_folder

PRIVATE_FOLDER = private_folder("defect_tf-web-")  # also removes earlier pages' folders left by a killed process
os.environ["GRADIO_TEMP_DIR"] = str(PRIVATE_FOLDER / "uploads")  # read by Gradio when it is imported
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from defect_tf.anomaly.pipeline import stage_one_damaged  # noqa: E402
from defect_tf.anomaly.regions import outline_overlay  # noqa: E402
from defect_tf.data.images import read_photo  # noqa: E402
from defect_tf.errors import ImageError  # noqa: E402
from defect_tf.inference.predictor import Predictor, scaled_down  # noqa: E402
from defect_tf.limits import MAX_DISPLAY_SIDE, MAX_UPLOAD_MB  # noqa: E402, F401 (MAX_UPLOAD_MB: app.py's default)
from defect_tf.runtime.images import resize  # noqa: E402
from defect_tf.runtime.predictions import Prediction  # noqa: E402

KEEP_UPLOADS_SECONDS = 300  # uploads are deleted this long after they arrive (and all when the app stops)


def private_copies(samples: list[str]) -> list[str]:
    """Copies of the sample photos in the app's private folder: the page serves those, never the originals' folder."""
    copies = []
    for index, sample in enumerate(samples):
        folder = PRIVATE_FOLDER / "samples" / str(index)  # one folder each: two samples may share a name
        folder.mkdir(parents=True, exist_ok=True)
        copies.append(str(shutil.copyfile(sample, folder / Path(sample).name)))
    return copies


def attribute_table(prediction: Prediction, thresholds: dict[str, float]) -> str:
    """The result as an HTML table: attribute, probability, threshold, detected (detected rows in bold)."""
    rows = []
    for name, probability in prediction.probabilities.items():
        found = name in prediction.detected
        style = ' style="font-weight:bold;color:#b91c1c"' if found else ""
        threshold = (f"{thresholds[name]:.3f}" if np.isfinite(thresholds[name]) else
                     "highest wins" if np.isnan(thresholds[name]) else "untrained")  # NaN: a multi-class model
        rows.append(f"<tr{style}><td>{html.escape(name)}</td><td>{probability:.3f}</td>"
                    f"<td>{threshold}</td><td>{'DETECTED' if found else 'no'}</td></tr>")
    return ('<table id="attribute-table"><thead><tr><th>attribute</th><th>probability</th><th>threshold</th>'
            f"<th>detected</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


class DefectApp:
    """What the page does with one upload; separate from Gradio so it can be tested without a browser."""

    def __init__(self, predictor: Predictor, max_upload_mb: float = MAX_UPLOAD_MB, inferencer=None, localizer=None):
        """`inferencer`: a runtime's (an exported model) that answers instead of the Keras model; the heatmaps
        always come from the Keras model's gradients. `localizer`: an anomaly localiser beside the classifier,
        whose outline is shown under the answer for a photo the classifier calls damaged."""
        self.predictor, self.inferencer, self.localizer = predictor, inferencer, localizer
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        self.max_upload_mb = max_upload_mb
        bundle = predictor.bundle
        self.thresholds = dict(zip(bundle.attributes, map(float, bundle.thresholds)))

    def analyse(self, path: str | None) -> tuple[np.ndarray | None, str, list[tuple[np.ndarray, str]], str]:
        """(the photo as read, attribute table HTML, [(overlay, caption)], message) for an uploaded file."""
        if not path:
            return None, "", [], "Upload a photo, or pick a sample below."
        name = Path(path).name
        if Path(path).stat().st_size > self.max_upload_bytes:
            return None, "", [], f"**{html.escape(name)}** is larger than the {self.max_upload_mb:g} MB upload limit."
        try:
            photo = read_photo(path)
        except ImageError as error:
            reason = html.escape(error.reason or "cannot be decoded")
            if error.reason and ("larger than" in error.reason or "frames" in error.reason):
                return None, "", [], f"**{html.escape(name)}** is too large to read: {reason}."
            return None, "", [], f"**{html.escape(name)}** cannot be read: {reason}."
        if self.inferencer is None:
            prediction = self.predictor.predict_photo(photo, name)
        else:
            size = self.inferencer.metadata.image_size
            probabilities = self.inferencer.forward(resize(photo, size)[None])
            prediction = self.inferencer.postprocess([name], probabilities)[0]
        overlays = self.predictor.explain(photo, prediction.detected, MAX_DISPLAY_SIDE)
        gallery = [(picture, f"{attribute} ({prediction.probabilities[attribute]:.2f})")
                   for attribute, picture in overlays.items()]
        found = "Class" if self.predictor.bundle.task.name == "multiclass" else "Detected"
        message = (f"{found}: {', '.join(prediction.detected)}. Heatmaps show where the model looked (red = most)."
                   if prediction.detected else "No defect detected.")
        if self.localizer is not None and stage_one_damaged(prediction, self.predictor.bundle.task.name):
            outline = self.localizer.locate(photo, outline=True)
            area = int(outline.mask.sum())
            gallery.insert(0, (scaled_down(outline_overlay(photo, outline.mask, outline.regions), MAX_DISPLAY_SIDE),
                               f"outline: {area} px ({100 * area / outline.mask.size:.2f}%)"))
            message += (f" Outlined by the localiser: {area} px ({100 * area / outline.mask.size:.2f}% of the photo) "
                        f"in {len(outline.regions)} region(s).")
        return scaled_down(photo, MAX_DISPLAY_SIDE), attribute_table(prediction, self.thresholds), gallery, message


def build_page(app: DefectApp, samples: list[str], keep_uploads_seconds: int = KEEP_UPLOADS_SECONDS) -> gr.Blocks:
    """The Gradio page around a DefectApp; `samples` are offered as private copies (see `private_copies`)."""
    bundle = app.predictor.bundle
    samples = private_copies(samples)
    sweep = (max(1, min(60, keep_uploads_seconds // 2)), keep_uploads_seconds)  # (every N s, delete older than M s)
    with gr.Blocks(title="defect_tf", analytics_enabled=False, delete_cache=sweep) as page:
        answered = f" Answered by {app.inferencer.runtime}; heatmaps from the Keras model." if app.inferencer else ""
        if app.localizer is not None:
            answered += " Damaged photos are outlined by the anomaly localiser."
        gr.Markdown(f"# defect_tf\nModel: {bundle.metadata.backbone or 'a classifier'}, "
                    f"{bundle.image_size} px, {bundle.task.name}, "
                    f"{'classes' if bundle.task.name == 'multiclass' else 'attributes'} {', '.join(bundle.attributes)}. "
                    f"Uploads up to {app.max_upload_mb:g} MB.{answered}")
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Photo", type="filepath", elem_id="upload")
                if samples:
                    gr.Examples(samples, inputs=upload, label="Samples")
                photo = gr.Image(label="As the model reads it (upright)", elem_id="photo", interactive=False)
            with gr.Column():
                message = gr.Markdown(elem_id="message")
                table = gr.HTML(elem_id="attributes")
                heatmaps = gr.Gallery(label="Heatmaps", elem_id="heatmaps", columns=2, height="auto")
        upload.change(app.analyse, inputs=upload, outputs=[photo, table, heatmaps, message])
    return page
