"""Exporting a bundle as the Model Zoo's archive: its layout, the weights and their sha256, what stays out, bad
input."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

from dhvae_monai import bundle_export
from dhvae_monai.bundle_export import BundleExportError, export_bundle

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "dhvae_brats"
ARCHIVE = "dhvae_brats_v0.1.0.zip"


@pytest.fixture
def bundle(tmp_path) -> Path:
    """A copy of dhvae_brats with trained weights in models/, a run folder, input scans and caches beside them."""
    copy = tmp_path / "bundles" / "dhvae_brats"
    shutil.copytree(BUNDLE, copy, ignore=shutil.ignore_patterns("*.pt", "*.ts", "runs", "__pycache__"))
    (copy / "models" / "model.pt").write_bytes(b"segmenter weights")
    (copy / "models" / "generator.pt").write_bytes(b"generator weights")
    for leftover in (
        "runs/segmentation/dhvae/checkpoint.pt",
        "input/scan_flair.nii.gz",
        "configs/__pycache__/x.pyc",
        "docs/.notes.md",
    ):
        (copy / leftover).parent.mkdir(parents=True, exist_ok=True)
        (copy / leftover).write_bytes(b"not part of the bundle")
    return copy


def _members(archive: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(archive) as handle:
        return {info.filename: handle.read(info) for info in handle.infolist()}


def test_archive_has_the_model_zoo_layout_with_weights_and_their_sha256(bundle, tmp_path):
    archive = export_bundle(bundle, tmp_path / "dist")
    assert archive == tmp_path / "dist" / ARCHIVE
    members = _members(archive)
    committed = sorted(
        f"dhvae_brats/{path.relative_to(BUNDLE).as_posix()}"
        for folder in ("configs", "docs")
        for path in (BUNDLE / folder).rglob("*")
        if path.is_file()
    )
    assert sorted(members) == sorted(
        [
            *committed,
            "dhvae_brats/LICENSE",
            "dhvae_brats/large_files.yml",
            "dhvae_brats/models/",
            "dhvae_brats/models/generator.pt",
            "dhvae_brats/models/model.pt",
        ]
    )
    assert members["dhvae_brats/models/model.pt"] == b"segmenter weights"
    assert members["dhvae_brats/configs/inference.yaml"] == (BUNDLE / "configs/inference.yaml").read_bytes()
    assert yaml.safe_load(members["dhvae_brats/large_files.yml"])["large_files"] == [
        {"path": f"models/{name}", "url": "", "hash_val": hashlib.sha256(content).hexdigest(), "hash_type": "sha256"}
        for name, content in (("generator.pt", b"generator weights"), ("model.pt", b"segmenter weights"))
    ]


def test_same_bundle_gives_the_same_bytes(bundle, tmp_path):
    first = export_bundle(bundle, tmp_path / "first").read_bytes()
    (bundle / "configs" / "inference.yaml").touch()  # a newer modification time changes nothing
    assert export_bundle(bundle, tmp_path / "second").read_bytes() == first


def test_weights_from_a_run_replace_the_bundles_and_keep_a_published_url(bundle, tmp_path):
    run_models = tmp_path / "runs" / "main" / "models"
    run_models.mkdir(parents=True)
    (run_models / "model.pt").write_bytes(b"weights of the run")
    published = {
        "path": "models/model.pt",
        "url": "https://example.org/model.pt",
        "hash_val": hashlib.sha256(b"weights of the run").hexdigest(),
        "hash_type": "sha256",
    }
    listed_elsewhere = {
        "path": "models/model.ts",
        "url": "https://example.org/model.ts",
        "hash_val": "",
        "hash_type": "",
    }
    (bundle / "large_files.yml").write_text(yaml.safe_dump({"large_files": [listed_elsewhere, published]}))
    members = _members(export_bundle(bundle, tmp_path / "dist", weights_from=run_models))
    assert members["dhvae_brats/models/model.pt"] == b"weights of the run"
    assert "dhvae_brats/models/generator.pt" not in members
    assert yaml.safe_load(members["dhvae_brats/large_files.yml"])["large_files"] == [listed_elsewhere, published]


def test_weights_that_differ_from_their_entry_are_recorded_without_its_url(bundle, tmp_path):
    stale = {
        "path": "models/model.pt",
        "url": "https://example.org/model.pt",
        "hash_val": "0" * 64,
        "hash_type": "sha256",
    }
    (bundle / "large_files.yml").write_text(yaml.safe_dump({"large_files": [stale]}))
    entries = yaml.safe_load(_members(export_bundle(bundle, tmp_path / "dist"))["dhvae_brats/large_files.yml"])[
        "large_files"
    ]
    assert entries[-1] == {
        "path": "models/model.pt",
        "url": "",
        "hash_val": hashlib.sha256(b"segmenter weights").hexdigest(),
        "hash_type": "sha256",
    }


def test_export_without_trained_weights_is_one_clear_error_and_writes_nothing(bundle, tmp_path, capsys):
    (bundle / "models" / "model.pt").unlink()
    assert bundle_export.main([str(bundle), "--output", str(tmp_path / "dist")]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: no trained weights: {bundle / 'models' / 'model.pt'} not found. Train the segmenter (the "
        "train_segmentation stage), pass --weights-from with a run's models/ folder, or --allow-missing-weights to "
        "export the configs alone."
    ]
    assert not (tmp_path / "dist").exists()


def test_an_interrupted_export_leaves_no_partial_archive(bundle, tmp_path, monkeypatch):
    write = bundle_export._add_file

    def fail_on_weights(archive, path, name):
        if path.suffix == ".pt":
            raise OSError("disk full")
        write(archive, path, name)

    monkeypatch.setattr(bundle_export, "_add_file", fail_on_weights)
    with pytest.raises(OSError, match="disk full"):
        export_bundle(bundle, tmp_path / "dist")
    assert list((tmp_path / "dist").iterdir()) == []


def test_allow_missing_weights_exports_the_configs_alone(bundle, tmp_path):
    for weights in (bundle / "models").glob("*.pt"):
        weights.unlink()
    members = _members(export_bundle(bundle, tmp_path / "dist", allow_missing_weights=True))
    assert not [name for name in members if name.startswith("dhvae_brats/models/") and name != "dhvae_brats/models/"]
    assert yaml.safe_load(members["dhvae_brats/large_files.yml"])["large_files"] == []


def test_a_listed_but_absent_model_says_where_to_download_it(bundle, tmp_path):
    (bundle / "models" / "model.pt").unlink()
    entry = {
        "path": "models/model.pt",
        "url": "https://example.org/model.pt",
        "hash_val": "0" * 64,
        "hash_type": "sha256",
    }
    (bundle / "large_files.yml").write_text(yaml.safe_dump({"large_files": [entry]}))
    with pytest.raises(
        BundleExportError, match=r"large_files.yml lists it at https://example.org/model.pt: download it into"
    ):
        export_bundle(bundle, tmp_path / "dist")


@pytest.mark.parametrize(
    "setup, message",
    [
        (
            lambda bundle: (bundle / "configs" / "metadata.json").unlink(),
            r"is not a bundle: .*configs/metadata.json not found",
        ),
        (
            lambda bundle: (bundle / "configs" / "metadata.json").write_text('{"version": 1}'),
            r"'version' must be a string",
        ),
        (
            lambda bundle: (bundle / "large_files.yml").write_text("large_files: {}"),
            r"large_files.yml: expected a 'large_files' list",
        ),
    ],
)
def test_bad_bundles_are_named(bundle, tmp_path, setup, message):
    setup(bundle)
    with pytest.raises(BundleExportError, match=message):
        export_bundle(bundle, tmp_path / "dist")


def test_weights_from_a_missing_folder_is_named(bundle, tmp_path):
    with pytest.raises(BundleExportError, match=r"--weights-from .*nowhere: not a folder"):
        export_bundle(bundle, tmp_path / "dist", weights_from=tmp_path / "nowhere")
