"""Anomaly models by name, as backbones are (models/registry.py): what each is and where it lives. Imported
lazily, so reading the table needs neither TensorFlow nor Keras."""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class AnomalyEntry:
    module: str  # the trainable model (Keras)
    cls: str
    maps_module: str  # its answer around the network, in NumPy: what an exported network runs with
    maps_cls: str
    summary: str
    default_size: int  # the shorter side of its input


ANOMALY_MODELS: dict[str, AnomalyEntry] = {
    # 192 px: on the magnetic tiles' validation photos, within 0.006 of the best image and pixel AUROC (160 px) with
    # more of each defect outlined (benchmarks/patchcore_size.py, docs/findings.md); 256 px was below on both
    "patchcore": AnomalyEntry("defect_tf.anomaly.patchcore.model", "PatchCore",
                              "defect_tf.anomaly.patchcore.maps", "PatchCoreMaps",
                              "nearest-neighbour distance to a memory bank of pretrained patch features; one pass",
                              default_size=192),
    "draem": AnomalyEntry("defect_tf.anomaly.draem.model", "Draem", "defect_tf.anomaly.draem.maps", "DraemMaps",
                          "a reconstructive and a discriminative network trained on synthetic anomalies; epochs",
                          default_size=128),
}


def get_anomaly_model(name: str):
    """The model class registered as `name`; an unknown name lists the known ones."""
    if name not in ANOMALY_MODELS:
        raise ValueError(f"unknown anomaly model {name!r}; choose one of: {', '.join(sorted(ANOMALY_MODELS))}")
    entry = ANOMALY_MODELS[name]
    return getattr(importlib.import_module(entry.module), entry.cls)
