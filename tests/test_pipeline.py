from __future__ import annotations

import argparse
import re

import monai.bundle
import pytest

from dhvae_monai import pipeline
from dhvae_monai.pipeline import SEGMENTATION_VARIANTS, PipelineError, format_results, parse_override, run_pipeline, run_stage


def test_format_results_is_a_markdown_table_in_percent():
    results = {
        "no_augmentation": {"metrics": {"test_mean_dice": 0.81234, "test_hd95": 3.456, "test_soft_dice_2d": 0.7}, "num_cases": 2},
        "dhvae": {"metrics": {"test_mean_dice": None, "test_soft_dice_2d": 0.0}, "num_cases": 3},
        "my_variant": {"metrics": {}, "num_cases": 1},
    }
    assert format_results(results).splitlines() == [
        "| segmenter trained with | test volumes | 3D Dice (%) | HD95 (voxels) | 2D soft Dice (%) |",
        "|---|---|---|---|---|",
        "| no augmentation | 2 | 81.2 | 3.5 | 70.0 |",
        "| dHVAE synthetic pairs | 3 | n/a | n/a | 0.0 |",  # None (undefined) and missing -> n/a; 0.0 is a value
        "| my_variant | 1 | n/a | n/a | n/a |",
    ]
    assert format_results({}).count("\n") == 1  # header only


@pytest.mark.parametrize(
    "text,expected",
    [
        ("generator_epochs=50", ("generator_epochs", 50)),
        ("segmentation_learning_rate=1.0e-4", ("segmentation_learning_rate", 1.0e-4)),
        ("regions=[WT, TC]", ("regions", ["WT", "TC"])),
        ("use_amp=false", ("use_amp", False)),
        ("dataset_dir=/data/x=y", ("dataset_dir", "/data/x=y")),  # split at the first '=' only
        ("dataset_dir=", ("dataset_dir", None)),
    ],
)
def test_parse_override_parses_yaml_values(text, expected):
    assert parse_override(text) == expected


def test_parse_override_scientific_notation_without_a_dot_is_a_number():
    # `--set segmentation_learning_rate=1e-4` is how learning rates are written; PyYAML (YAML 1.1) reads it as a string
    key, value = parse_override("segmentation_learning_rate=1e-4")
    assert key == "segmentation_learning_rate"
    assert value == pytest.approx(1e-4) and isinstance(value, float), f"parsed as {value!r} ({type(value).__name__})"


@pytest.mark.parametrize("text", ["generator_epochs", "=5", ""])
def test_parse_override_without_key_or_equals_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match=rf"expected KEY=VALUE, got {re.escape(repr(text))}"):
        parse_override(text)


def test_unknown_variant_fails_before_any_stage(tmp_path, monkeypatch):
    stages = []
    monkeypatch.setattr(pipeline, "run_stage", lambda *args, **kwargs: stages.append(args))
    with pytest.raises(PipelineError, match=r"unknown segmentation variant\(s\) \['mixup'\]; choose from \['no_augmentation', 'traditional', 'dhvae'\]"):
        run_pipeline(tmp_path / "bundle", tmp_path / "out", variants=["dhvae", "mixup"])
    assert stages == [] and not (tmp_path / "out").exists()
    assert list(SEGMENTATION_VARIANTS) == ["no_augmentation", "traditional", "dhvae"]


def test_run_stage_names_the_missing_config_files(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(monai.bundle, "run", lambda **kwargs: calls.append(kwargs))
    configs = tmp_path / "bundle" / "configs"
    configs.mkdir(parents=True)
    (configs / "common.yaml").write_text("{}\n")
    with pytest.raises(PipelineError) as error:
        run_stage(tmp_path / "bundle", "sample", ["phantom.yaml"], output_dir=str(tmp_path / "out"))
    message = str(error.value)
    assert message.startswith("sample: config file(s) [")
    assert str(configs / "sample.yaml") in message and str(configs / "phantom.yaml") in message
    assert str(configs / "common.yaml") not in message
    assert f"is {tmp_path / 'bundle'} a dhvae-monai bundle?" in message
    assert calls == []

    with pytest.raises(PipelineError, match=r"train_generator: config file\(s\) .* not found"):
        run_stage(tmp_path / "not_a_bundle", "train_generator")


def test_run_stage_passes_configs_in_order_and_reports_the_root_cause(tmp_path, monkeypatch):
    configs = tmp_path / "configs"
    configs.mkdir()
    for name in ("common.yaml", "evaluate.yaml", "phantom.yaml"):
        (configs / name).write_text("{}\n")
    calls = []
    monkeypatch.setattr(monai.bundle, "run", lambda **kwargs: calls.append(kwargs))
    run_stage(tmp_path, "evaluate", ["phantom.yaml"], output_dir="runs/x", run_name="dhvae")
    assert calls[0]["config_file"] == [str(configs / name) for name in ("common.yaml", "evaluate.yaml", "phantom.yaml")]
    assert calls[0]["bundle_root"] == str(tmp_path)
    assert calls[0]["output_dir"] == "runs/x" and calls[0]["run_name"] == "dhvae"

    def failing_run(**kwargs):
        try:
            raise KeyError("segmenter_weights")
        except KeyError as cause:
            raise RuntimeError("Failed to evaluate ConfigExpression") from cause

    monkeypatch.setattr(monai.bundle, "run", failing_run)
    with pytest.raises(PipelineError, match=r"^stage evaluate failed: KeyError: 'segmenter_weights'$"):
        run_stage(tmp_path, "evaluate", ["phantom.yaml"])
