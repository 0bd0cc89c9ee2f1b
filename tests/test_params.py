"""Params validation: every bad value is refused with the key, the value and what is allowed."""

import dataclasses

import pytest

from src.core import params
from src.core.errors import ParamError
from src.core.params import PrepareParams, TrainParams
from tests.conftest import REPO


def refuse(raw: dict, *fragments: str, cls=TrainParams, section="train"):
    with pytest.raises(ParamError) as caught:
        params.from_dict(cls, section, raw)
    for fragment in fragments:
        assert fragment in str(caught.value)
    return str(caught.value)


def test_repo_params_yaml_is_valid_and_equals_the_defaults():
    # params.yaml documents the defaults; the dataclasses must say the same thing.
    loaded = params.validate_all(params.read_yaml(REPO / "params.yaml"))
    for name, cls in params.SECTIONS.items():
        assert loaded[name] == cls(), name


def test_unknown_key_suggests_the_right_one():
    message = refuse({"dropuot": 0.3}, "unknown key train.dropuot", "did you mean train.dropout")
    assert "allowed keys" in message


@pytest.mark.parametrize("raw, fragments", [
    ({"dropout": 1.0}, ("train.dropout = 1.0", "[0.0, 1.0)")),
    ({"dropout": -0.1}, ("train.dropout",)),
    ({"lr": 0}, ("train.lr", "(0.0, inf)")),
    ({"lr": -1e-3}, ("train.lr",)),
    ({"epochs": 0}, ("train.epochs = 0",)),
    ({"batch_size": 0}, ("train.batch_size = 0",)),
    ({"model": "rnn"}, ("train.model = 'rnn'", "cnn, mlp")),
    ({"norm": "batchnorm"}, ("train.norm", "none, batch, instance, layer, group")),
    ({"optimizer": "adagrad"}, ("train.optimizer", "adam, adamw, sgd, rmsprop")),
    ({"schedule": "linear"}, ("train.schedule", "constant, cosine, onecycle, step")),
    ({"epochs": "ten"}, ("train.epochs = 'ten'", "integer")),
    ({"epochs": 2.5}, ("integer",)),
    ({"dropout": True}, ("train.dropout", "number")),
    ({"hflip": "yes"}, ("train.hflip", "boolean")),
    ({"ema": 1.0}, ("train.ema = 1.0", "[0.0, 1.0)")),
    ({"tta_hflip": 1}, ("train.tta_hflip", "boolean")),
    ({"conv_channels": [32, "64"]}, ("train.conv_channels", "list of integers")),
    ({"conv_channels": [32, 0]}, ("train.conv_channels",)),
    ({"conv_channels": [8] * 5}, ("5 poolings", "train.pool_every")),
    ({"norm": "group", "conv_channels": [12, 24]}, ("train.norm_groups = 8", "[12] are not divisible")),
    ({"model": "mlp", "norm": "instance"}, ("train.norm = instance", "mlp")),
])
def test_bad_train_values_are_refused(raw, fragments):
    refuse(raw, *fragments)


def test_numbers_written_as_yaml_strings_are_numbers():
    # PyYAML reads `1e-3` (no dot) as the string "1e-3".
    assert TrainParams.from_dict({"lr": "1e-3"}).lr == 0.001
    assert TrainParams.from_dict({"weight_decay": 5e-4}).weight_decay == 0.0005
    assert TrainParams.from_dict({"epochs": 3.0}).epochs == 3


def test_deep_stacks_work_when_pooling_is_spaced_out():
    cfg = TrainParams.from_dict({"conv_channels": [16] * 8, "pool_every": 2})
    assert len(cfg.conv_channels) == 8
    TrainParams.from_dict({"conv_channels": [16] * 6, "pooling": "none"})


@pytest.mark.parametrize("raw, fragments", [
    ({"cv_folds": 1}, ("prepare.cv_folds = 1",)),
    ({"train_size": 40, "cv_folds": 5}, ("smallest class count", "4 images per class")),
    ({"train_size": 60001}, ("prepare.train_size", "60000")),
    ({"test_size": 5}, ("prepare.test_size",)),
    ({"train_size": 55000}, ("prepare.selection_size = 10000 is more than the 5000 training images",
                             "train_size = 55000 leaves out", "0 = no selection set")),
    ({"train_size": 60000, "selection_size": 1}, ("prepare.selection_size = 1 is more than the 0",)),
    ({"selection_size": 5}, ("prepare.selection_size = 5 cannot hold every class", "at least 10")),
    ({"selection_size": -1}, ("prepare.selection_size = -1",)),
])
def test_bad_prepare_values_are_refused(raw, fragments):
    refuse(raw, *fragments, cls=PrepareParams, section="prepare")


def test_a_selection_set_fits_what_the_subset_leaves():
    assert params.from_dict(PrepareParams, "prepare", {"train_size": 50000}).selection_size == 10000
    assert params.from_dict(PrepareParams, "prepare",
                            {"train_size": 60000, "selection_size": 0}).selection_size == 0


def test_unknown_section_and_non_mapping():
    with pytest.raises(ParamError, match="unknown section"):
        params.validate_all({"trian": {}})
    with pytest.raises(ParamError, match="must be a mapping"):
        params.from_dict(TrainParams, "train", [1, 2])


def test_load_reads_one_section(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 1e-2\n  epochs: 3\nplot: {misclassified: 4}\n")
    assert params.load("train", path) == TrainParams(lr=0.01, epochs=3)
    with pytest.raises(ParamError, match="not found"):
        params.load("train", tmp_path / "missing.yaml")
    path.write_text("train: [\n")
    with pytest.raises(ParamError, match="not valid YAML"):
        params.load("train", path)


def test_params_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainParams().lr = 1.0


def test_keys_a_tree_predates_read_as_they_ran_and_are_left_out_for_its_code():
    old = {"prepare": {"train_size": 60000}, "train": {"lr": 0.01}}
    filled = params.with_absent_keys(old)
    assert filled["prepare"] == {"train_size": 60000, "selection_size": 0}
    assert old == {"prepare": {"train_size": 60000}, "train": {"lr": 0.01}}  # not modified
    assert params.with_absent_keys({"prepare": {"selection_size": 5}})["prepare"] == \
        {"selection_size": 5}
    sent = {"prepare": {"train_size": 300, "selection_size": 100}, "train": {"epochs": 1}}
    assert params.without_keys_absent_from(sent, old)["prepare"] == {"train_size": 300}
    assert params.without_keys_absent_from(sent, filled) == sent  # a tree that has the key
    assert sent["prepare"]["selection_size"] == 100
