from __future__ import annotations

import pytest
import yaml

from dhvae_monai.experiments import ExperimentError, ExperimentRun, ExperimentSweep, split_patients
from tests.bundles.conftest import BUNDLE_NAMES, BUNDLES_DIR


def sweep(**changes) -> ExperimentSweep:
    settings = dict(
        training_patients=[2, 4],
        num_synthetic=[0, 50, 100],
        seeds=[0, 1],
        num_test=3,
        num_val=1,
        baselines={"no_augmentation": {"augmentation": "none"}, "traditional": {"augmentation": "traditional"}},
        generators={"vae": {"leapfrog_steps": 0}, "dhvae": {}},
    )
    return ExperimentSweep(**{**settings, **changes})


def test_runs_cover_every_configuration_once_with_m0_as_the_baseline():
    runs = sweep().runs()
    # per (R, seed): 2 baselines + 2 generators x 2 positive M
    assert len(runs) == 2 * 2 * (2 + 2 * 2)
    assert len(set(runs)) == len(runs)
    assert ExperimentRun("no_augmentation", 2, 0, 0) in runs
    assert ExperimentRun("dhvae", 4, 100, 1) in runs
    assert not [run for run in runs if run.method in ("vae", "dhvae") and run.num_synthetic == 0]
    assert ExperimentRun("dhvae", 4, 100, 1).name == "dhvae_M00100"
    assert ExperimentRun("traditional", 4, 0, 1).group == "R004_seed1"


def test_restricted_keeps_the_reference_baseline_and_refuses_unknown_methods():
    smaller = sweep().restricted(training_patients=[2], seeds=[1], methods=["dhvae"])
    assert smaller.methods == ("no_augmentation", "dhvae")
    assert smaller.seeds == (1,) and smaller.training_patients == (2,)
    assert {run.method for run in smaller.runs()} == {"no_augmentation", "dhvae"}
    with pytest.raises(ExperimentError, match="unknown method.*lsgan"):
        sweep().restricted(methods=["lsgan"])


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"seeds": []}, "seeds is empty"),
        ({"training_patients": [0, 2]}, "training_patients must be >= 1"),
        ({"num_synthetic": [-1]}, "num_synthetic must be >= 0"),
        ({"num_test": 0}, "num_test and num_val must be >= 1"),
        ({"baselines": {"traditional": {}}}, "must include 'no_augmentation'"),
        ({"generators": {"traditional": {}}}, "named both a baseline and a generator"),
    ],
)
def test_bad_sweeps_are_named(changes, message):
    with pytest.raises(ExperimentError, match=message):
        sweep(**changes)


def test_split_test_patients_are_fixed_and_training_sets_nested():
    cases = [f"case{i:02d}" for i in range(12)]
    splits = {(r, s): split_patients(cases, sweep(), r, s) for r in (2, 4, 8) for s in (0, 1)}
    tests = {tuple(split["test"]) for split in splits.values()}
    assert len(tests) == 1 and len(next(iter(tests))) == 3
    for (r, s), split in splits.items():
        assert len(split["training"]) == r and len(split["validation"]) == 1
        assert not set(split["training"]) & set(split["test"]) and not set(split["training"]) & set(split["validation"])
        assert split["validation"] == splits[(2, s)]["validation"]
    assert set(splits[(2, 0)]["training"]) < set(splits[(4, 0)]["training"]) < set(splits[(8, 0)]["training"])
    assert splits[(4, 0)]["training"] != splits[(4, 1)]["training"], "seeds draw other training patients"
    assert split_patients(list(reversed(cases)), sweep(), 4, 1) == splits[(4, 1)], "the order of the list does not matter"


def test_split_with_too_few_patients_or_duplicates_is_named():
    with pytest.raises(ExperimentError, match="5 patients, but R = 4 needs 8"):
        split_patients([f"c{i}" for i in range(5)], sweep(), 4, 0)
    with pytest.raises(ExperimentError, match=r"more than once: \['c1'\]"):
        split_patients(["c1", "c1", "c2", "c3", "c4", "c5", "c6"], sweep(), 2, 0)


def test_config_files_merge_and_bad_keys_are_named(tmp_path):
    base, small = tmp_path / "experiment.yaml", tmp_path / "small.yaml"
    base.write_text(yaml.safe_dump({
        "training_patients": [10], "num_synthetic": [0, 500], "seeds": [0, 1, 2], "num_test": 30, "num_val": 2,
        "baselines": {"no_augmentation": None}, "generators": {"dhvae": None}, "stage_settings": {"image_size": 128},
    }))
    small.write_text(yaml.safe_dump({"seeds": [0], "stage_settings": {"generator_epochs": 2}}))
    merged = ExperimentSweep.from_config(base, small)
    assert merged.seeds == (0,) and merged.training_patients == (10,)
    assert merged.stage_settings == {"image_size": 128, "generator_epochs": 2}
    assert merged.baselines == {"no_augmentation": {}}
    small.write_text(yaml.safe_dump({"seed": [0]}))
    with pytest.raises(ExperimentError, match=r"small.yaml: unknown key\(s\) \['seed'\]"):
        ExperimentSweep.from_config(base, small)
    partial = tmp_path / "partial.yaml"
    partial.write_text("seeds: [1]\n")
    with pytest.raises(ExperimentError, match=r"lacks \['training_patients'"):
        ExperimentSweep.from_config(partial)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        ExperimentSweep.from_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_bundle_sweeps_are_the_papers_protocol_and_a_small_phantom_one(bundle):
    paper = ExperimentSweep.from_bundle(BUNDLES_DIR / bundle)
    assert paper.num_synthetic == (0, 500, 1000, 1500, 2000) and paper.seeds == (0, 1, 2, 3, 4) and paper.num_test == 30
    assert paper.methods == ("no_augmentation", "traditional", "matched_iterations", "vae", "hvae", "dhvae")
    assert paper.generators["vae"] == {"leapfrog_steps": 0, "regulariser_weight": 0.0}
    assert paper.generators["hvae"] == {"regulariser_weight": 0.0} and paper.generators["dhvae"] == {}
    phantom = ExperimentSweep.from_bundle(BUNDLES_DIR / bundle, phantom=True)
    assert set(paper.methods) <= set(phantom.methods)
    assert phantom.stage_settings["image_size"] < 128 and len(phantom.runs()) < len(paper.runs())
    configs = BUNDLES_DIR / bundle / "configs"
    known = {**yaml.safe_load((configs / "common.yaml").read_text()), **yaml.safe_load((configs / "train_generator.yaml").read_text())}
    for settings in (phantom.stage_settings, *phantom.generators.values(), *phantom.baselines.values()):
        assert set(settings) <= set(known), "overrides only name existing config keys"


def test_cpu_sweep_for_real_patients_only_names_existing_keys():
    bundle = BUNDLES_DIR / "dhvae_brats"
    cpu = ExperimentSweep.from_bundle(bundle, extra_configs=[bundle / "configs" / "experiment_cpu.yaml"])
    assert cpu.num_patients_needed <= 7, "fits the real BraTS cases beside the project"
    configs = bundle / "configs"
    known = {**yaml.safe_load((configs / "common.yaml").read_text()), **yaml.safe_load((configs / "train_generator.yaml").read_text())}
    assert set(cpu.stage_settings) <= set(known)


@pytest.mark.parametrize("config", sorted(str(path) for path in BUNDLES_DIR.glob("*/configs/experiment*.yaml")))
def test_each_sweeps_matched_iterations_control_matches_its_largest_number_of_pairs(config):
    sweep = ExperimentSweep.from_config(BUNDLES_DIR / "dhvae_brats" / "configs" / "experiment.yaml", config)
    assert sweep.baselines["matched_iterations"] == {"augmentation": "none", "matched_num_synthetic": sweep.max_synthetic}
