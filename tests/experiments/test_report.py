"""The sweep's report: statistics over seeds and the markdown tables, on hand-made rows (no training)."""

from __future__ import annotations

import math

import pytest

from dhvae_monai.experiments import ExperimentSweep
from dhvae_monai.experiments.report import format_results_tables, summarise_runs


def _row(method: str, num_synthetic: int, seed: int, dice: float | None, soft: float = 0.5, hd95: float = 4.0) -> dict:
    return {"method": method, "training_patients": 2, "num_synthetic": num_synthetic, "seed": seed,
            "dice_3d": dice, "soft_dice_2d": soft, "hd95": hd95}


ROWS = [
    _row("no_augmentation", 0, 0, 0.10), _row("no_augmentation", 0, 1, 0.30), _row("no_augmentation", 0, 2, None),
    _row("dhvae", 100, 0, 0.0), _row("dhvae", 100, 1, 0.64), _row("dhvae", 100, 2, float("nan")),
]


def test_summary_is_mean_and_sample_std_over_the_seeds_leaving_out_missing_scores():
    summary = summarise_runs(ROWS)
    assert [(entry["method"], entry["num_synthetic"], entry["runs"]) for entry in summary] == [
        ("no_augmentation", 0, 3), ("dhvae", 100, 3),
    ]
    baseline, dhvae = summary
    assert baseline["dice_3d_mean"] == pytest.approx(0.20) and baseline["dice_3d_n"] == 2
    assert baseline["dice_3d_std"] == pytest.approx(math.sqrt(0.02))  # ddof = 1: ((0.1)^2 + (0.1)^2) / 1
    assert dhvae["dice_3d_values"] == [0.0, 0.64]
    assert baseline["soft_dice_2d_n"] == 3 and baseline["soft_dice_2d_std"] == 0.0


def test_one_value_has_no_std_and_no_value_is_not_a_number():
    summary = summarise_runs([_row("dhvae", 100, 0, 0.5), _row("traditional", 0, 0, None)])
    assert summary[0]["dice_3d_std"] is None and summary[0]["dice_3d_mean"] == 0.5
    assert summary[1]["dice_3d_mean"] is None and summary[1]["dice_3d_values"] == []


def test_tables_show_mean_std_and_every_runs_dice_in_the_sweeps_method_order():
    sweep = ExperimentSweep(
        training_patients=[2], num_synthetic=[0, 100], seeds=[0, 1, 2], num_test=3, num_val=1,
        baselines={"no_augmentation": {}}, generators={"dhvae": {}},
    )
    table = format_results_tables(summarise_runs(list(reversed(ROWS))), sweep)
    lines = table.splitlines()
    assert lines[0] == "**2 real training patients**"
    assert lines[2].endswith("| 3D Dice of each run (%) |")
    assert lines[4] == "| no augmentation | 0 | 3 | 20.0 ± 14.1 | 50.0 ± 0.0 | 4.0 ± 0.0 | 30, 10 |"
    # a failed run (0 %) beside a good one is visible, not only as a wide standard deviation
    assert lines[5] == "| dHVAE | 100 | 3 | 32.0 ± 45.3 | 50.0 ± 0.0 | 4.0 ± 0.0 | 64, 0 |"
