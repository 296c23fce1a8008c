from __future__ import annotations

import collections
import re

import pytest
import torch

from dhvae_monai.networks import DHVAE, WeightsMismatchError, load_weights

TINY = {"image_size": 16, "channels": (8, 8), "num_res_blocks": 1, "attention_levels": (False, False), "norm_num_groups": 8}


def _net(seed: int = 0, hidden: int = 4) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2))


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    assert a.state_dict().keys() == b.state_dict().keys()
    for name, value in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[name], value)


def test_bare_state_dict_is_loaded_and_the_network_returned(tmp_path):
    source = DHVAE(**TINY)
    torch.save(source.state_dict(), tmp_path / "model.pt")
    torch.manual_seed(1)
    target = DHVAE(**TINY)
    assert not torch.equal(target.output_layer.weight, source.output_layer.weight)
    assert load_weights(target, tmp_path / "model.pt") is target
    _assert_same_weights(source, target)


@pytest.mark.parametrize("wrap", ["network", "model", "data_parallel"])
def test_single_entry_checkpoints_and_data_parallel_prefixes_are_accepted(tmp_path, wrap):
    source = _net(0)
    state = source.state_dict()
    if wrap == "data_parallel":
        content = collections.OrderedDict((f"module.{name}", value) for name, value in state.items())
    else:
        content = {wrap: state}
    torch.save(content, tmp_path / "weights.pt")
    target = load_weights(_net(1), str(tmp_path / "weights.pt"))
    _assert_same_weights(source, target)


def test_key_selects_an_entry_of_a_training_checkpoint(tmp_path):
    generator, discriminator = _net(0), _net(1, hidden=5)
    torch.save({"generator": generator.state_dict(), "discriminator": discriminator.state_dict()}, tmp_path / "ckpt.pt")
    _assert_same_weights(generator, load_weights(_net(2), tmp_path / "ckpt.pt", key="generator"))
    with pytest.raises(ValueError, match=r"ckpt\.pt: no 'optimizer' entry; it holds \['discriminator', 'generator'\]"):
        load_weights(_net(2), tmp_path / "ckpt.pt", key="optimizer")


def test_missing_file_names_the_path_and_the_stage_to_run(tmp_path):
    path = tmp_path / "models" / "generator.pt"
    with pytest.raises(FileNotFoundError, match=rf"weights file {re.escape(str(path))} not found: run the train_generator stage first"):
        load_weights(_net(), path, produced_by="train_generator")


def test_unreadable_file_is_a_value_error_naming_it(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: not a readable PyTorch weights file"):
        load_weights(_net(), path)


class _Payload:
    """Not a tensor: unpickling it would run arbitrary code in a hostile file."""


def test_pickled_objects_are_refused_not_unpickled(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"0.weight": _Payload()}, path)
    with pytest.raises(ValueError, match=rf"(?s){re.escape(str(path))}: not a readable PyTorch weights file.*Unsupported global"):
        load_weights(_net(), path)


def test_a_tensor_instead_of_a_state_dict_is_refused(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "model.pt")
    with pytest.raises(ValueError, match=r"model\.pt: expected a state_dict, found Tensor"):
        load_weights(_net(), tmp_path / "model.pt")


def test_other_configuration_says_what_differs_and_what_to_do(tmp_path):
    torch.save(_net(0, hidden=4).state_dict(), tmp_path / "model.pt")
    target = _net(1, hidden=6)
    before = {name: value.clone() for name, value in target.state_dict().items()}
    with pytest.raises(WeightsMismatchError) as error:
        load_weights(target, tmp_path / "model.pt", produced_by="train_segmentation")
    message = str(error.value)
    assert str(tmp_path / "model.pt") in message
    assert "3 shape mismatches, first 0.weight: file (4, 3) vs config (6, 3)" in message
    assert "re-run the train_segmentation stage" in message and "image size, channels" in message
    assert isinstance(error.value, ValueError)
    for name, value in before.items():  # nothing half-loaded
        torch.testing.assert_close(target.state_dict()[name], value)


def test_latent_size_change_missing_and_extra_layers_are_reported(tmp_path):
    source = DHVAE(latent_channels=3, **TINY)
    torch.save(source.state_dict(), tmp_path / "generator.pt")
    with pytest.raises(
        WeightsMismatchError,
        match=r"generator\.pt was trained with a different network configuration \(9 shape mismatches, first "
        r"autoencoder\.encoder\.blocks\.8\.conv\.weight: file \(3, 8, 3, 3\) vs config \(4, 8, 3, 3\)\)",
    ):
        load_weights(DHVAE(latent_channels=4, **TINY), tmp_path / "generator.pt")
    state = _net(0).state_dict()
    state["2.extra"] = torch.zeros(1)
    del state["0.bias"]
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(
        WeightsMismatchError,
        match=r"1 layers missing from the file, first 0\.bias; 1 layers not in the config, first 2\.extra\)",
    ):
        load_weights(_net(1), tmp_path / "model.pt")
