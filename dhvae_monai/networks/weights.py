"""Loading trained weights into a network built from a configuration, with messages that say what to fix."""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["WeightsMismatchError", "load_weights"]


class WeightsMismatchError(ValueError):
    """A weights file was trained with another network configuration than the one it is loaded into."""


def load_weights(
    network: torch.nn.Module,
    path: str | os.PathLike,
    produced_by: str = "training",
    key: str | None = None,
    map_location: str | torch.device = "cpu",
) -> torch.nn.Module:
    """
    Load a ``state_dict`` (``weights_only``, never unpickling objects) into ``network`` and return the network.

    Args:
        network: the network, built with the configuration the weights are expected to match.
        path: a bare ``state_dict`` file (``models/model.pt``) or a training checkpoint holding it under ``key``.
        produced_by: the stage that writes the file, named in the message when it is missing.
        key: entry of a training checkpoint holding the weights (e.g. ``"generator"``); None: a bare ``state_dict``
            (a checkpoint with ``"network"``/``"model"`` entries is also accepted).
        map_location: device to load the tensors to.

    Returns:
        ``network`` with the weights loaded.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not a readable weights file.
        WeightsMismatchError: the weights' layer names or shapes differ from ``network``'s.

    Example::

        generator = load_weights(DHVAE(image_size=128), "models/generator.pt", produced_by="train_generator")
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"weights file {path} not found: run the {produced_by} stage first, or point the config at existing weights."
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{path}: not a readable PyTorch weights file ({error}).") from error
    if key is not None:
        if not isinstance(state, dict) or key not in state:
            raise ValueError(f"{path}: no {key!r} entry; it holds {sorted(state) if isinstance(state, dict) else type(state)}.")
        state = state[key]
    elif isinstance(state, dict):
        # a training checkpoint (network + optimizer + trainer) rather than a bare state_dict
        state = next((state[name] for name in ("network", "model") if isinstance(state.get(name), dict)), state)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state_dict, found {type(state).__name__}.")
    state = {name.removeprefix("module."): value for name, value in state.items()}

    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    resized = [
        f"{name}: file {tuple(state[name].shape)} vs config {tuple(expected[name].shape)}"
        for name in expected
        if name in state and state[name].shape != expected[name].shape
    ]
    if missing or unexpected or resized:
        details = "; ".join(
            part
            for part in (
                f"{len(resized)} shape mismatches, first {resized[0]}" if resized else "",
                f"{len(missing)} layers missing from the file, first {missing[0]}" if missing else "",
                f"{len(unexpected)} layers not in the config, first {unexpected[0]}" if unexpected else "",
            )
            if part
        )
        raise WeightsMismatchError(
            f"{path} was trained with a different network configuration ({details}). Use the settings it was "
            f"trained with (image size, channels, modalities, regions), or re-run the {produced_by} stage."
        )
    network.load_state_dict(state)
    return network
