"""A backbone's intermediate feature maps by level (timm's `features_only`, keras-hub's `pyramid_outputs`): level
P`k` is the map at 1/2^k of the input side. Anomaly models (anomaly/patchcore/) compare photos on these."""

from __future__ import annotations

from functools import lru_cache

import keras

from defect_tf.models.registry import get_backbone

PROBE_SIDE = 64  # the input side used to find each layer's scale
LEVELS = tuple(f"P{k}" for k in range(1, 6))  # 1/2 ... 1/32 of the side


@lru_cache(maxsize=None)
def _last_layer_per_level(backbone: str) -> dict[str, int]:
    """Level -> index of the last layer at that scale (indices, not names: Keras numbers some layer names per
    process). For an inverted-residual backbone that is the next block's expansion."""
    model = get_backbone(backbone).constructor(include_top=False, weights=None,
                                               input_shape=(PROBE_SIDE, PROBE_SIDE, 3))
    levels = {}
    for index, layer in enumerate(model.layers):
        shape = getattr(layer, "output", None)
        shape = getattr(shape, "shape", None)
        if shape is None or len(shape) != 4 or not shape[1]:
            continue
        level = f"P{(PROBE_SIDE // shape[1]).bit_length() - 1}"
        if PROBE_SIDE % shape[1] == 0 and level in LEVELS:
            levels[level] = index
    return levels


def pyramid_levels(backbone: str) -> list[str]:
    """The levels `backbone` has (P1 ... P5; small backbones stop earlier)."""
    entry = get_backbone(backbone)
    return [level for level, _ in entry.pyramid] if entry.pyramid else sorted(_last_layer_per_level(backbone))


def feature_extractor(backbone: keras.Model, backbone_name: str, levels: list[str]) -> keras.Model:
    """The given backbone (built by its registry constructor, with any input size) cut to output its maps at
    `levels`, in that order: the registry's `pyramid` layers where it names them, else the last layer at each
    scale."""
    known = pyramid_levels(backbone_name)
    unknown = [level for level in levels if level not in known]
    if unknown:
        raise ValueError(f"{backbone_name} has no feature level {', '.join(unknown)}; it has {', '.join(known)}")
    named = dict(get_backbone(backbone_name).pyramid)
    layers = [backbone.get_layer(named[level]) if named else backbone.layers[_last_layer_per_level(backbone_name)[level]]
              for level in levels]
    return keras.Model(backbone.inputs, [layer.output for layer in layers], name=f"{backbone_name}_features")
