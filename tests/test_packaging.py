"""The package as users get it: ``python -m build`` gives a wheel and an sdist that hold the package and its schema
copy and nothing of the repository's tests, bundles, runs or data, and the wheel installs into a clean virtual
environment where the commands run."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import dhvae_monai
from dhvae_monai.bundle_check import CHECKS

REPO_ROOT = Path(__file__).resolve().parents[1]
VERSION = dhvae_monai.__version__
# the CPU build, installed first as the Makefile does, so pip does not pull a CUDA one for the range in setup.py
TORCH_SPEC = "torch==2.13.0"
# nothing of these may travel in a distribution: weights, scans, archives
DATA_SUFFIXES = (".pt", ".pth", ".ts", ".nii", ".nii.gz", ".zip", ".npz", ".png")


def _run(command: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert (
        result.returncode == 0
    ), f"{' '.join(map(str, command))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def distributions(tmp_path_factory) -> dict[str, Path]:
    """The sdist and the wheel that ``python -m build`` makes (the wheel built from the sdist)."""
    output = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(output), str(REPO_ROOT)], cwd=output)
    wheels, sdists = list(output.glob("*.whl")), list(output.glob("*.tar.gz"))
    assert len(wheels) == len(sdists) == 1, sorted(path.name for path in output.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


def _assert_no_repository_content(names: list[str], prefix: str) -> None:
    relative = [name.removeprefix(prefix) for name in names]
    for folder in ("tests/", "bundles/", "benchmarks/", "runs/", "docs/", "data/"):
        assert not [name for name in relative if name.startswith(folder)], folder
    assert not [name for name in relative if name.endswith(DATA_SUFFIXES)]
    assert not [name for name in relative if "__pycache__" in name or name.endswith(".pyc")]


def test_wheel_holds_the_package_and_its_schema_only(distributions):
    wheel = distributions["wheel"]
    assert wheel.name == f"dhvae_monai-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert {name.split("/")[0] for name in names} == {"dhvae_monai", f"dhvae_monai-{VERSION}.dist-info"}
    assert {
        "dhvae_monai/bundle_check.py",
        "dhvae_monai/bundle_export.py",
        "dhvae_monai/schemas/meta_schema_20240725.json",
        "dhvae_monai/schemas/README.md",
    } <= set(names)
    _assert_no_repository_content(names, "")


def test_sdist_holds_what_builds_the_wheel_and_no_tests_or_data(distributions):
    sdist = distributions["sdist"]
    prefix = f"dhvae_monai-{VERSION}/"
    assert sdist.name == f"dhvae_monai-{VERSION}.tar.gz"
    with tarfile.open(sdist) as archive:
        names = [member.name for member in archive.getmembers() if member.isfile()]
    for name in (
        "setup.py",
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "CHANGELOG.md",
        "dhvae_monai/__init__.py",
        "dhvae_monai/schemas/meta_schema_20240725.json",
    ):
        assert prefix + name in names, name
    _assert_no_repository_content(names, prefix)


def test_wheel_installs_into_a_clean_venv_and_checks_a_bundle(distributions, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = str(venv / "bin" / "python")
    # --no-compile: byte-compiling all of torch at install time is most of an install's minutes; imports compile
    # what they use
    _run([python, "-m", "pip", "install", "--quiet", "--no-compile", TORCH_SPEC], cwd=tmp_path, timeout=900)
    _run(
        [python, "-m", "pip", "install", "--quiet", "--no-compile", str(distributions["wheel"])],
        cwd=tmp_path,
        timeout=900,
    )
    _run([python, "-m", "pip", "check"], cwd=tmp_path)

    # run outside the repository, so the installed package is imported, not the checkout's
    location = _run(
        [python, "-c", "import dhvae_monai; print(dhvae_monai.__file__, dhvae_monai.__version__)"], cwd=tmp_path
    )
    path, version = location.stdout.split()
    assert Path(path).is_relative_to(venv) and version == VERSION
    usage = _run([python, "-m", "dhvae_monai.bundle_check", "--help"], cwd=tmp_path)
    assert usage.stdout.startswith("usage: python -m dhvae_monai.bundle_check")
    # the whole check from the installed package: its schema copy is found, MONAI's verify and export run
    result = _run([python, "-m", "dhvae_monai.bundle_check", str(REPO_ROOT / "bundles" / "dhvae_brats")], cwd=tmp_path)
    assert result.stdout.strip().splitlines()[-1].endswith(f"passes the Model Zoo checks ({', '.join(CHECKS)}).")
