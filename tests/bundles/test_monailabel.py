"""The bundles served by a real MONAI Label server: its ``monaibundle`` sample app, a studies folder of phantom
volumes, slice-by-slice inference and retraining over HTTP on 127.0.0.1.

MONAI Label lives in its own environment (``make label-env``; see the Makefile for why): the server is started from
that environment's ``monailabel`` executable, found at ``.venv-label/bin/monailabel`` or at ``$DHVAE_MONAILABEL``.
Without it these tests skip; with ``DHVAE_MONAILABEL`` set (as ``.ci/run`` does) a missing executable fails them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml
from monai.bundle import ConfigParser

from tests.bundles.conftest import BUNDLES_DIR, TINY, run_bundle

REPO_ROOT = BUNDLES_DIR.parent
MONAILABEL_VARIABLE = "DHVAE_MONAILABEL"
DEFAULT_MONAILABEL = REPO_ROOT / ".venv-label" / "bin" / "monailabel"
STARTUP_TIMEOUT = 180  # s; the server imports torch and MONAI before it answers
REQUEST_TIMEOUT = 300
MISSING_IMAGE_MESSAGE = "'image': an empty file path (MONAI Label sends one for an image id that is not in its studies"
# the tiny runs' settings (phantom.yaml's, then TINY's) that the copies' configs repeat: MONAI Label reads them as is
TINY_NETWORK_KEYS = ("image_size", "num_axial_slices", "segmenter_features", "segmentation_batch_size",
                     "segmentation_val_interval")


@pytest.fixture(scope="session")
def monailabel() -> Path:
    """The label environment's ``monailabel`` executable (a session fixture, so a skip comes before any training)."""
    configured = os.environ.get(MONAILABEL_VARIABLE)
    if configured:
        if not Path(configured).is_file():
            pytest.fail(f"{MONAILABEL_VARIABLE}={configured}: no such executable; build it with `make label-env`.")
        return Path(configured)
    if not DEFAULT_MONAILABEL.is_file():
        pytest.skip(f"MONAI Label is not installed: `make label-env` creates {DEFAULT_MONAILABEL} "
                    f"(or set {MONAILABEL_VARIABLE} to a monailabel executable)")
    return DEFAULT_MONAILABEL


def _label_environment(monailabel: Path, workdir: Path) -> dict:
    # the `monailabel` script runs the first `python` on PATH: its own environment's
    return {
        **os.environ,
        "PATH": f"{monailabel.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
        "MONAI_LABEL_SESSION_PATH": str(workdir / "sessions"),
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tiny_settings(bundle: str) -> dict:
    phantom = yaml.safe_load((BUNDLES_DIR / bundle / "configs/phantom.yaml").read_text())
    merged = {**phantom, **TINY}
    return {key: merged[key] for key in TINY_NETWORK_KEYS}


def _install_bundle(bundle: str, weights: Path, model_dir: Path) -> Path:
    """The bundle copied where the monaibundle app looks (``model/<name>``), with a tiny checkpoint and the tiny
    network sizes written into the configs MONAI Label reads."""
    destination = model_dir / bundle
    shutil.copytree(BUNDLES_DIR / bundle, destination, ignore=shutil.ignore_patterns("runs", "*.pt", "*.ts"))
    shutil.copy(weights, destination / "models/model.pt")
    settings = _tiny_settings(bundle)
    for name in ("inference.yaml", "train.yaml"):
        path = destination / "configs" / name
        config = yaml.safe_load(path.read_text())
        config.update({key: value for key, value in settings.items() if key in config})
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    return destination


class Server:
    """A ``monailabel start_server`` process on 127.0.0.1, its log in a file."""

    def __init__(self, monailabel: Path, app: Path, studies: Path, models: list[str], workdir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        command = [
            str(monailabel), "start_server", "--app", str(app), "--studies", str(studies),
            "--conf", "models", ",".join(models),
            "--conf", "zoo_source", "github",  # not the default "monaihosting": local bundles, nothing downloaded
            "--conf", "sam2", "false",
            "--host", "127.0.0.1", "--port", str(self.port),
        ]
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                command, cwd=workdir, env=_label_environment(monailabel, workdir), stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"monailabel start_server exited ({self.process.returncode}):\n{self.log()[-6000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/info/", timeout=5):
                    return
            except OSError:
                time.sleep(1)
        pytest.fail(f"monailabel start_server did not answer within {STARTUP_TIMEOUT} s:\n{self.log()[-6000:]}")

    def post(self, path: str, query: dict, body: dict | None = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else b""
        request = urllib.request.Request(
            f"{self.url}{path}?{urllib.parse.urlencode(query)}", data=data, method="POST",
            headers={"Content-Type": "application/json"} if body is not None else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def info(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/info/", timeout=30) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def hecktor_segmenter(tmp_path_factory) -> Path:
    """A tiny HECKTOR segmenter trained by configs/train.yaml alone (MONAI Label's config, here outside MONAI Label),
    with validation every epoch."""
    output_dir = tmp_path_factory.mktemp("hecktor_train_yaml")
    settings = {**TINY, "num_synthetic": 0, "output_dir": output_dir, "models_dir": output_dir / "models"}
    run_bundle("dhvae_hecktor", ["train.yaml", "phantom.yaml"], settings)
    return output_dir


def test_train_config_alone_trains_and_validates_the_segmenter(hecktor_segmenter):
    weights = torch.load(hecktor_segmenter / "models/model.pt", weights_only=True)
    assert weights["final_conv.weight"].shape[0] == 1  # one region: GTV
    assert list((hecktor_segmenter / "segmentation/dhvae/tensorboard").iterdir())


@pytest.fixture(scope="module")
def served(monailabel, brats_segmenter, hecktor_segmenter, tmp_path_factory):
    """The monaibundle app serving both bundles; studies: BraTS FLAIR volumes with labels, a HECKTOR PET volume."""
    workdir = tmp_path_factory.mktemp("monailabel")
    environment = _label_environment(monailabel, workdir)
    download = subprocess.run(
        [str(monailabel), "apps", "--download", "--name", "monaibundle", "--output", str(workdir / "apps")],
        cwd=workdir, env=environment, capture_output=True, text=True, timeout=300,
    )
    app = workdir / "apps/monaibundle"
    assert download.returncode == 0 and (app / "main.py").is_file(), download.stdout[-3000:] + download.stderr[-3000:]
    bundles = {
        "dhvae_brats": _install_bundle("dhvae_brats", brats_segmenter / "models/model.pt", app / "model"),
        "dhvae_hecktor": _install_bundle("dhvae_hecktor", hecktor_segmenter / "models/model.pt", app / "model"),
    }

    studies = workdir / "studies"
    (studies / "labels/final").mkdir(parents=True)
    for case in sorted(folder for folder in (brats_segmenter / "phantom_brats2021").iterdir() if folder.is_dir()):
        shutil.copy(case / f"{case.name}_flair.nii.gz", studies / f"{case.name}.nii.gz")
        shutil.copy(case / f"{case.name}_seg.nii.gz", studies / "labels/final" / f"{case.name}.nii.gz")
    pet = sorted((hecktor_segmenter / "phantom_hecktor2021/hecktor_nii").glob("*_pt.nii.gz"))[0]
    shutil.copy(pet, studies / pet.name)  # unlabelled: the BraTS training never sees it

    server = Server(monailabel, app, studies, list(bundles), workdir)
    try:
        server.wait_until_ready()
        yield server, bundles, studies
    finally:
        server.stop()


def _expected_mask(bundle: Path, image: Path, output_dir: Path) -> np.ndarray:
    """The bundle's own inference (configs/inference.yaml, as ``monai.bundle run`` runs it) on the same volume."""
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs/inference.yaml"))
    parser.update({"bundle_root": str(bundle), "input": str(image), "output_dir": str(output_dir), "device": "cpu"})
    parser.get_parsed_content("evaluator").run()
    (written,) = output_dir.glob("*_seg.nii.gz")
    return np.asarray(nib.load(written).dataobj)


def _infer(server: Server, model: str, image_id: str, output: Path) -> nib.Nifti1Image:
    status, content = server.post(f"/infer/{model}", {"image": image_id, "output": "image"})
    assert status == 200, f"{status} {content[:500]!r}\n{server.log()[-6000:]}"
    output.write_bytes(content)
    return nib.load(output)


@pytest.mark.parametrize(("model", "region"), [("dhvae_brats", "whole tumour"), ("dhvae_hecktor", "gtv")])
def test_infer_returns_the_bundles_mask_in_the_input_space_with_the_metadata_labels(served, tmp_path, model, region):
    server, bundles, studies = served
    assert server.info()["models"][model]["labels"] == {region: 1}
    image = sorted(studies.glob("*_pt.nii.gz" if model == "dhvae_hecktor" else "BraTS*.nii.gz"))[0]
    image_id = image.name.removesuffix(".nii.gz")

    mask = _infer(server, model, image_id, tmp_path / "mask.nii.gz")
    source = nib.load(image)
    assert mask.shape == source.shape
    np.testing.assert_allclose(mask.affine, source.affine, atol=1e-4)
    values = np.asarray(mask.dataobj)
    assert set(np.unique(values)) <= {0, 1}
    np.testing.assert_array_equal(values, _expected_mask(bundles[model], image, tmp_path / "bundle_run"))


def test_infer_of_an_image_not_in_the_studies_names_the_problem_once(served):
    server, _, _ = served
    status, _ = server.post("/infer/dhvae_brats", {"image": "no_such_case", "output": "image"})
    assert status == 500  # MONAI Label answers any failed inference so; its log says why
    deadline = time.monotonic() + 30  # the log is written after the answer
    while MISSING_IMAGE_MESSAGE not in server.log() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert server.log().count(MISSING_IMAGE_MESSAGE) == 1, server.log()[-4000:]


def test_train_retrains_the_segmenter_on_the_studies_labels(served, tmp_path):
    server, bundles, studies = served
    weights = bundles["dhvae_brats"] / "models/model.pt"
    before = torch.load(weights, weights_only=True)
    request = {"max_epochs": 1, "val_split": 0.25, "device": "cpu", "multi_gpu": False}
    status, content = server.post("/train/dhvae_brats", {"run_sync": "true"}, request)
    assert status == 200, f"{status} {content[:500]!r}\n{server.log()[-6000:]}"

    log = server.log()
    assert f"Total Records in Dataset: {len(list((studies / 'labels/final').iterdir()))};" in log  # the labelled ones
    assert f"Restored all variables from {weights}" in log  # MONAI Label's CheckpointLoader: from the served model
    assert "val_mean_dice" in log  # validated on MONAI Label's validation study
    after = torch.load(weights, weights_only=True)
    assert set(after) == set(before)
    assert any(not torch.equal(before[key], after[key]) for key in before)

    # the retrained model serves the next request, on the input's grid as before
    image = sorted(studies.glob("BraTS*.nii.gz"))[0]
    mask = _infer(server, "dhvae_brats", image.name.removesuffix(".nii.gz"), tmp_path / "mask.nii.gz")
    np.testing.assert_array_equal(
        np.asarray(mask.dataobj), _expected_mask(bundles["dhvae_brats"], image, tmp_path / "bundle_run")
    )
