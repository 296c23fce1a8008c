"""Sharing a trained bundle: export the Model Zoo's archive with the weights train_segmentation wrote, unpack it
elsewhere, check it and segment a scan from the unpacked folder, as a user who receives it would."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import nibabel as nib
import numpy as np

from dhvae_monai.bundle_check import CHECKS
from dhvae_monai.bundle_files import file_sha256
from tests.bundles.conftest import BUNDLES_DIR, TINY, bundle_command


def _run(command: list[str], cwd) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(map(str, command))}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_exported_archive_unpacks_passes_the_checks_and_segments_a_scan(brats_segmenter, tmp_path):
    weights = brats_segmenter / "models"
    _run(
        [
            sys.executable,
            "-m",
            "dhvae_monai.bundle_export",
            str(BUNDLES_DIR / "dhvae_brats"),
            "--output",
            str(tmp_path / "dist"),
            "--weights-from",
            str(weights),
        ],
        cwd=tmp_path,
    )
    with zipfile.ZipFile(tmp_path / "dist" / "dhvae_brats_v0.1.0.zip") as archive:
        archive.extractall(tmp_path / "received")
    bundle = tmp_path / "received" / "dhvae_brats"
    assert file_sha256(bundle / "models" / "model.pt") == file_sha256(weights / "model.pt")

    # the weights were trained with the phantom settings, so they are checked and used with them
    check = _run(
        [
            sys.executable,
            "-m",
            "dhvae_monai.bundle_check",
            str(bundle),
            "--config",
            "configs/phantom.yaml",
            "--require-weights",
        ],
        cwd=tmp_path,
    )
    assert check.stdout.splitlines() == [f"{bundle}: passes the Model Zoo checks ({', '.join(CHECKS)})."]

    case = json.loads((brats_segmenter / "datalist.json").read_text())["test"][0]
    flair = case["image"][case["modalities"].index("flair")]
    overrides = {"input": flair, "image_size": TINY["image_size"], "num_axial_slices": TINY["num_axial_slices"]}
    _run(bundle_command(["inference.yaml", "phantom.yaml"], overrides), cwd=bundle)
    masks = list((bundle / "runs" / "inference").glob("*_seg.nii.gz"))
    assert [path.name for path in masks] == [f"{case['case_id']}_flair_seg.nii.gz"]
    mask, scan = nib.load(masks[0]), nib.load(flair)
    assert mask.shape == scan.shape
    np.testing.assert_allclose(mask.affine, scan.affine, atol=1e-4)
    assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}
