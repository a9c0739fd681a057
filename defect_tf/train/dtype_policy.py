"""Numeric precision: mixed float16 on GPUs (about twice as fast there), float32 on CPUs."""

from __future__ import annotations

import keras
import tensorflow as tf

POLICIES = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


def set_precision(requested: str = "auto") -> str:
    """Set Keras's global dtype policy; `auto` means mixed_float16 if a GPU is visible, else float32."""
    if requested not in POLICIES:
        raise ValueError(f"unknown precision {requested!r}; choose one of: {', '.join(POLICIES)}")
    policy = requested
    if requested == "auto":
        policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    keras.mixed_precision.set_dtype_policy(policy)
    return policy
