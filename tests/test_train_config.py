"""Training settings have one home (train/config.py): the command line offers each with the dataclass's default."""

import dataclasses

from defect_tf.apps import train
from defect_tf.data.splits import SPLIT_FRACTIONS
from defect_tf.train.config import TrainConfig

NOT_FLAGS = {"split"}  # the split fractions: fixed for the command line (a split file gives another split)
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
