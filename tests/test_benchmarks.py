"""The benchmarks' baselines compute what they claim to, so the ratios they report compare like with like."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("leapfrog_steps", [1, 3])
def test_recomputing_leapfrog_follows_the_same_trajectory_with_twice_the_evaluations(leapfrog_steps):
    generator_step = _load("generator_step")
    torch.manual_seed(3)
    pair = torch.cat([torch.rand(2, 1, 32, 32), (torch.rand(2, 1, 32, 32) > 0.8).float()], dim=1)
    outputs, calls = [], []
    for recompute in (False, True):
        network = generator_step._network(32, leapfrog_steps, recompute, (16, 32, 64, 64))
        count = [0]
        potential_energy = network.potential_energy

        def counted(*args, _count=count, _potential=potential_energy, **kwargs):
            _count[0] += 1
            return _potential(*args, **kwargs)

        network.potential_energy = counted
        torch.manual_seed(5)
        outputs.append(network(pair, return_flow=True))
        calls.append(count[0])
    assert calls == [leapfrog_steps + 1, 2 * leapfrog_steps]
    torch.testing.assert_close(outputs[0].z_k, outputs[1].z_k)
    torch.testing.assert_close(outputs[0].reconstruction, outputs[1].reconstruction)
