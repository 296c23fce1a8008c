"""
A bundle as the Model Zoo's archive, with its trained weights, for sharing:

    python -m dhvae_monai.bundle_export bundles/dhvae_brats --output dist --weights-from runs/dhvae_brats/models

writes ``dist/dhvae_brats_v<version>.zip`` holding ``dhvae_brats/`` with ``configs/``, ``docs/``, ``LICENSE``,
``models/`` (the trained weights) and ``large_files.yml``: the layout of the archives the Model Zoo publishes, which
``python -m monai.bundle download`` unpacks. Run outputs, input scans, caches and hidden files stay out.

The Model Zoo builds its archive by downloading each ``large_files.yml`` entry into the bundle, deleting
``large_files.yml`` and zipping the folder. Here the weights come from the bundle's ``models/`` or from
``--weights-from`` (nothing is downloaded), and the archive keeps a ``large_files.yml`` that records the sha256 of
every weight file it holds (with the entry's ``url`` when the file is the one the bundle's entry describes). So the
unpacked archive passes ``python -m dhvae_monai.bundle_check``, and ``python -m monai.bundle download_large_files``
verifies its weights instead of downloading them. Entries for weights the archive does not hold are kept as they
are. Members get a fixed timestamp, as in the Model Zoo's archives, so the same bundle zips to the same bytes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Sequence

from dhvae_monai.bundle_files import BUNDLE_FOLDERS, LARGE_FILES_NAMES, LargeFile, LargeFilesError, bundle_files
from dhvae_monai.bundle_files import dump_large_files, file_sha256, find_large_files, read_large_files, weight_files
from dhvae_monai.utils.atomic import atomic_path

__all__ = ["BundleExportError", "export_bundle", "main"]

logger = logging.getLogger(__name__)

#: the member timestamp of the Model Zoo's archives (its ci/utils.py touches every file to it before zipping)
ARCHIVE_DATE = (2022, 5, 30, 0, 0, 0)
INFERENCE_WEIGHTS = "model.pt"
LARGE_FILES_HEADER = """Weight files of this archive and their sha256 (the Model Zoo's large_files format). An entry
with a url is also published there; `python -m monai.bundle download_large_files` checks the files present and
downloads the others."""


class BundleExportError(ValueError):
    """The bundle cannot be exported; the message names the file and what to do."""


def _bundle_version(root: Path) -> str:
    path = root / "configs" / "metadata.json"
    if not path.is_file():
        raise BundleExportError(f"{root} is not a bundle: {path} not found.")
    try:
        version = json.loads(path.read_text(encoding="utf-8")).get("version")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as error:
        raise BundleExportError(f"{path}: not a JSON object with a 'version' ({error}).") from error
    if not isinstance(version, str) or not version:
        raise BundleExportError(f"{path}: 'version' must be a string such as '0.1.0', found {version!r}.")
    return version


def _add_file(archive: zipfile.ZipFile, path: Path, name: str) -> None:
    info = zipfile.ZipInfo(name, ARCHIVE_DATE)
    info.file_size = path.stat().st_size  # known before writing, so zipfile switches to ZIP64 for large weights
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    with open(path, "rb") as source, archive.open(info, "w") as target:
        shutil.copyfileobj(source, target, 1 << 20)


def _add_text(archive: zipfile.ZipFile, text: str, name: str) -> None:
    info = zipfile.ZipInfo(name, ARCHIVE_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, text)


def _weight_entries(weights: Sequence[Path], published: dict[str, LargeFile]) -> list[LargeFile]:
    entries = []
    for path in weights:
        relative, sha256 = f"models/{path.name}", file_sha256(path)
        source = published.get(relative)
        same = source is not None and source.hash_type == "sha256" and source.hash_val == sha256
        if source is not None and not same:
            logger.warning(
                "%s differs from its large_files.yml entry: the archive records its own sha256, no url", path
            )
        entries.append(LargeFile(relative, source.url if same else "", sha256, "sha256"))
    return entries


def export_bundle(
    bundle_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    weights_from: str | os.PathLike | None = None,
    allow_missing_weights: bool = False,
) -> Path:
    """
    Write a bundle as the Model Zoo's archive ``<output_dir>/<name>_v<version>.zip`` (atomically), with its trained
    weights.

    Args:
        bundle_dir: the bundle folder; its name is the bundle's name.
        output_dir: where to write the archive (created if needed).
        weights_from: a folder of trained weights, e.g. a run's ``models/`` (``model.pt``, ``generator.pt``, ...);
            default: the bundle's own ``models/``. Every file in it goes into the archive's ``models/``.
        allow_missing_weights: export the configs alone when there is no ``model.pt``, instead of failing.

    Returns:
        the archive's path.

    Raises:
        BundleExportError: the folder is not a bundle, its ``version`` or ``large_files.yml`` is unreadable, or there
            are no trained weights and ``allow_missing_weights`` is not set.

    Example::

        export_bundle("bundles/dhvae_brats", "dist", weights_from="runs/dhvae_brats/models")
        # dist/dhvae_brats_v0.1.0.zip
    """
    root = Path(bundle_dir).resolve()
    version = _bundle_version(root)
    models_dir = Path(weights_from) if weights_from is not None else root / "models"
    if weights_from is not None and not models_dir.is_dir():
        raise BundleExportError(f"--weights-from {models_dir}: not a folder (give a run's models/ folder).")
    weights = weight_files(models_dir)
    large_files = find_large_files(root)
    try:
        published = {entry.path: entry for entry in read_large_files(large_files)} if large_files is not None else {}
    except LargeFilesError as error:
        raise BundleExportError(str(error)) from error
    if INFERENCE_WEIGHTS not in {path.name for path in weights} and not allow_missing_weights:
        listed = published.get(f"models/{INFERENCE_WEIGHTS}")
        hint = (
            f" (large_files.yml lists it at {listed.url}: download it into {root / 'models'} first)" if listed else ""
        )
        raise BundleExportError(
            f"no trained weights: {models_dir / INFERENCE_WEIGHTS} not found{hint}. Train the segmenter (the "
            "train_segmentation stage), pass --weights-from with a run's models/ folder, or --allow-missing-weights to "
            "export the configs alone."
        )
    shipped = _weight_entries(weights, published)
    entries = [entry for entry in published.values() if entry.path not in {item.path for item in shipped}] + shipped
    files = [name for name in bundle_files(root) if not name.startswith("models/") and name not in LARGE_FILES_NAMES]
    left_out = sorted(
        path.name
        for path in root.iterdir()
        if path.name not in (*BUNDLE_FOLDERS, "LICENSE", *LARGE_FILES_NAMES) and not path.name.startswith(".")
    )

    archive_path = Path(output_dir) / f"{root.name}_v{version}.zip"
    with atomic_path(archive_path) as temporary, zipfile.ZipFile(temporary, "w") as archive:
        for name in files:
            _add_file(archive, root / name, f"{root.name}/{name}")
        archive.writestr(zipfile.ZipInfo(f"{root.name}/models/", ARCHIVE_DATE), "")
        for path in weights:
            _add_file(archive, path, f"{root.name}/models/{path.name}")
        _add_text(archive, dump_large_files(entries, LARGE_FILES_HEADER), f"{root.name}/large_files.yml")
    logger.info(
        "wrote %s: %d bundle files, weights %s%s",
        archive_path,
        len(files),
        ", ".join(path.name for path in weights) or "none",
        f"; left out {', '.join(left_out)} (not part of a bundle)" if left_out else "",
    )
    return archive_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dhvae_monai.bundle_export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bundle_dir", help="the bundle folder, e.g. bundles/dhvae_brats")
    parser.add_argument("--output", required=True, help="folder to write <name>_v<version>.zip into")
    parser.add_argument(
        "--weights-from",
        default=None,
        metavar="MODELS_DIR",
        help="folder of trained weights, e.g. runs/dhvae_brats/models; default: the bundle's models/",
    )
    parser.add_argument(
        "--allow-missing-weights", action="store_true", help="export the configs alone when there is no model.pt"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    try:
        export_bundle(args.bundle_dir, args.output, args.weights_from, args.allow_missing_weights)
    except BundleExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
