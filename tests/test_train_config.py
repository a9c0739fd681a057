"""Training settings have one home (train/config.py): the command line offers each with the dataclass's default."""

import dataclasses

from defect_tf.apps import train
from defect_tf.data.splits import SPLIT_FRACTIONS
from defect_tf.train.config import TrainConfig

NOT_FLAGS = {"split", "na_labels"}  # the split fractions: fixed for the command line (a split file gives another
# split); the label file a later --fill-na round fills in: the run's own --labels
NOT_SETTINGS = {"help", "resume", "check"}  # what train.py does, not how it trains


def test_every_setting_is_a_flag_whose_default_is_the_dataclass_default():
    actions = {action.dest: action for action in train.build_parser()._actions}
    fields = {field.name: field for field in dataclasses.fields(TrainConfig)}
    assert set(actions) - NOT_SETTINGS == set(fields) - NOT_FLAGS
    for name, field in fields.items():
        if name in NOT_FLAGS:
            continue
        default = None if field.default is dataclasses.MISSING else field.default  # --data, --labels: required
        assert actions[name].default == default, name


def test_the_default_split_is_the_splitters_own():
    assert TrainConfig(data="d", labels="l").split == SPLIT_FRACTIONS == (0.7, 0.15, 0.15)


def test_settings_a_multiclass_run_cannot_use_are_refused_before_any_work(tmp_path):
    import pytest

    from defect_tf.errors import DefectTFError

    for flag, value in (("alpha", 0.75), ("threshold", 0.4)):
        config = TrainConfig(data=str(tmp_path), task="multiclass", **{flag: value})
        with pytest.raises(DefectTFError, match=f"--{flag} is for --task multilabel and binary, and this run is "
                                                "multiclass"):
            config.validate()
    with pytest.raises(DefectTFError, match="--label-smoothing is for --task multiclass, and this run is binary"):
        TrainConfig(data=str(tmp_path), task="binary", label_smoothing=0.1).validate()
    # left to the data, the task is known only once the labels are read: the same rule, then
    assert TrainConfig(data=str(tmp_path), alpha=0.75).task_problems("multilabel") == []
    assert TrainConfig(data=str(tmp_path), alpha=0.75).task_problems("multiclass")[0].startswith("--alpha is for")


def test_a_backbone_without_imagenet_weights_is_refused_with_the_fix_before_any_work(tmp_path):
    import pytest

    from defect_tf.errors import DefectTFError

    # before, the run read and checked every image first, then stopped on the default --weights imagenet
    with pytest.raises(DefectTFError, match="--backbone small_cnn has no ImageNet weights: add --weights none"):
        TrainConfig(data=str(tmp_path), backbone="small_cnn").validate()
    TrainConfig(data=str(tmp_path), backbone="small_cnn", weights="none").validate()
