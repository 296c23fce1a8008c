"""The sweep runner on tiny phantoms: every run scored, the report written, and a re-run resumes without redoing work."""

from __future__ import annotations

import csv
import json

import pytest

import dhvae_monai.pipeline
from dhvae_monai.data import make_datalist, make_phantom_dataset, write_datalist
from dhvae_monai.experiments import ExperimentError, ExperimentSweep, pooled_cases, run_experiment
from dhvae_monai.experiments.__main__ import main
from tests.bundles.conftest import BUNDLES_DIR, TINY

BUNDLE = BUNDLES_DIR / "dhvae_brats"
STAGE_SETTINGS = {key: value for key, value in TINY.items() if key != "num_phantom_cases"}


def tiny_sweep(**changes) -> ExperimentSweep:
    settings = dict(
        training_patients=[1, 2],
        num_synthetic=[0, 4, 8],
        seeds=[0],
        num_test=1,
        num_val=1,
        baselines={"no_augmentation": {"augmentation": "none"}},
        generators={"dhvae": {}},
        stage_settings=STAGE_SETTINGS,
    )
    return ExperimentSweep(**{**settings, **changes})


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("experiment")
    rows = run_experiment(BUNDLE, output_dir, tiny_sweep())
    return output_dir, rows


def test_every_run_is_scored_on_the_same_test_patients(finished_sweep):
    output_dir, rows = finished_sweep
    assert [(r["method"], r["training_patients"], r["num_synthetic"]) for r in rows] == [
        ("no_augmentation", 1, 0), ("dhvae", 1, 4), ("dhvae", 1, 8), ("no_augmentation", 2, 0), ("dhvae", 2, 4), ("dhvae", 2, 8),
    ]
    assert len({row["test_cases"] for row in rows}) == 1
    for row in rows:
        assert len(row["training_cases"].split(";")) == row["training_patients"]
        assert row["test_cases"] not in row["training_cases"]
        assert 0.0 <= row["dice_3d"] <= 1.0 and 0.0 <= row["soft_dice_2d"] <= 1.0 and row["test_volumes"] == 1
        summary = json.loads((output_dir / f"R{row['training_patients']:03d}_seed0" / "evaluation").joinpath(
            "no_augmentation" if row["num_synthetic"] == 0 else f"dhvae_M{row['num_synthetic']:05d}", "summary.json"
        ).read_text())
        assert summary["metrics"]["test_mean_dice"] == row["dice_3d"]
    # the generator of R = 1 was trained on that group's single training patient only
    datalist = json.loads((output_dir / "R001_seed0" / "datalist.json").read_text())
    assert [item["case_id"] for item in datalist["training"]] == rows[0]["training_cases"].split(";")


def test_one_generator_per_group_samples_the_largest_m_once(finished_sweep):
    output_dir, _ = finished_sweep
    for group in ("R001_seed0", "R002_seed0"):
        synthetic = json.loads((output_dir / group / "generators" / "dhvae" / "synthetic" / "synthetic_datalist.json").read_text())
        assert len(synthetic["training"]) == 8
        settings = json.loads((output_dir / group / "stages" / "train_segmentation_dhvae_M00004.json").read_text())["settings"]
        assert settings["num_synthetic"] == 4
        assert settings["synthetic_datalist"].endswith(f"{group}/generators/dhvae/synthetic/synthetic_datalist.json")
    assert list((output_dir / "cache").glob("*.pt")), "preprocessed volumes are cached for every stage"


def test_report_files(finished_sweep):
    output_dir, rows = finished_sweep
    with open(output_dir / "runs.csv") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(rows) and float(table[1]["dice_3d"]) == pytest.approx(rows[1]["dice_3d"])
    results = (output_dir / "results.md").read_text()
    assert "**1 real training patient**" in results and "**2 real training patients**" in results
    assert f"| dHVAE | 8 | 1 | {100 * rows[2]['dice_3d']:.1f} |" in results
    assert (output_dir / "dice_vs_synthetic.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((output_dir / "summary.json").read_text())["runs"][0]["runs"] == 1


def test_rerun_resumes_without_running_a_stage_and_extends_a_sweep(finished_sweep, monkeypatch):
    output_dir, rows = finished_sweep
    calls = []
    real_run_stage = dhvae_monai.pipeline.run_stage
    monkeypatch.setattr(
        "dhvae_monai.experiments.runner.run_stage",
        lambda bundle, stage, extra, **settings: calls.append((stage, settings["run_name"] if "run_name" in settings else ""))
        or real_run_stage(bundle, stage, extra, **settings),
    )
    assert run_experiment(BUNDLE, output_dir, tiny_sweep()) == rows
    assert calls == []
    run_experiment(BUNDLE, output_dir, tiny_sweep(training_patients=[1], num_synthetic=[0, 2, 8]))
    assert [stage for stage, _ in calls] == ["train_segmentation", "evaluate"], "only the new M = 2 run is trained"


def test_changed_settings_are_refused_rather_than_mixed(finished_sweep):
    output_dir, _ = finished_sweep
    with pytest.raises(ExperimentError, match=r"started with other settings \(generator_epochs differ"):
        run_experiment(BUNDLE, output_dir, tiny_sweep(stage_settings={**STAGE_SETTINGS, "generator_epochs": 3}))


def test_datalists_are_pooled_and_items_need_a_case_id(tmp_path):
    make_phantom_dataset(tmp_path / "a", "brats2021", num_cases=2, shape=(16, 16, 12))
    make_phantom_dataset(tmp_path / "b", "brats2023", num_cases=1, shape=(16, 16, 12), seed=5)
    first = write_datalist(make_datalist(tmp_path / "a", val_fraction=0, test_fraction=0.5), tmp_path / "a.json")
    second = write_datalist(make_datalist(tmp_path / "b", val_fraction=0, test_fraction=0), tmp_path / "b.json")
    cases, settings = pooled_cases([first, second])
    assert len(cases) == 3 and len({case["case_id"] for case in cases}) == 3
    assert "modalities" in settings
    anonymous = tmp_path / "anonymous.json"
    anonymous.write_text(json.dumps({"training": [{"image": "x.nii.gz", "label": "y.nii.gz"}]}))
    with pytest.raises(ExperimentError, match="anonymous.json: a 'training' item has no 'case_id'"):
        pooled_cases([anonymous])


def test_cli_names_too_few_patients_in_one_line(tmp_path, capsys):
    make_phantom_dataset(tmp_path / "data", "brats2021", num_cases=3, shape=(16, 16, 12))
    datalist = write_datalist(make_datalist(tmp_path / "data", val_fraction=0, test_fraction=0), tmp_path / "d.json")
    code = main([str(BUNDLE), "--datalist", str(datalist), "--output_dir", str(tmp_path / "out"), "--training_patients", "5"])
    assert code == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "3 patients, but R = 5 needs" in error
