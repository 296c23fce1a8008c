"""
What a MONAI bundle consists of, as the Model Zoo ships it: its files, its weights and the ``large_files.yml``
entries that stand in for weights too large to commit.

A bundle is ``configs/``, ``docs/``, ``models/``, ``LICENSE`` and ``large_files.yml``. Run outputs (``runs/``),
input scans, caches and hidden files next to them are not part of it. ``large_files.yml`` follows the Model Zoo's
format: a list ``large_files`` of entries with ``path`` (relative to the bundle), ``url``, ``hash_val`` and
``hash_type``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import yaml

__all__ = [
    "BUNDLE_FOLDERS",
    "LARGE_FILES_NAMES",
    "LargeFile",
    "LargeFilesError",
    "bundle_files",
    "dump_large_files",
    "file_sha256",
    "find_large_files",
    "read_large_files",
    "weight_files",
]

#: the folders of a bundle; with LICENSE and large_files.yml they are everything the Model Zoo ships
BUNDLE_FOLDERS = ("configs", "docs", "models")
#: the names the Model Zoo accepts for the large-files list, in its order of preference
LARGE_FILES_NAMES = ("large_files.yml", "large_files.yaml", "large_files.json")
_SKIPPED_PARTS = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache"}


class LargeFilesError(ValueError):
    """
    ``large_files.yml`` cannot be read or does not follow the Model Zoo's format.

    Args:
        path: the file.
        problem: what is wrong and what to do.
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


@dataclass(frozen=True)
class LargeFile:
    """
    One entry of ``large_files.yml``: a file kept out of the repository and where to download it.

    Args:
        path: the file's path relative to the bundle, e.g. ``models/model.pt``.
        url: where the Model Zoo downloads it from; empty when the file travels with the bundle (an archive).
        hash_val: its hash, checked after download; empty when not given.
        hash_type: ``sha256`` (this project's choice), or ``md5``, ``sha1``, ``sha512``, which the Zoo also accepts.
    """

    path: str
    url: str = ""
    hash_val: str = ""
    hash_type: str = ""


def _is_bundle_part(relative: Path) -> bool:
    return (
        not any(part.startswith(".") or part in _SKIPPED_PARTS for part in relative.parts) and relative.suffix != ".pyc"
    )


def bundle_files(bundle_dir: str | os.PathLike) -> list[str]:
    """
    The files that form a bundle: everything in ``configs/``, ``docs/`` and ``models/``, ``LICENSE`` and the
    large-files list; no hidden files, caches or compiled Python.

    Args:
        bundle_dir: the bundle folder.

    Returns:
        the files' paths relative to ``bundle_dir`` in POSIX form, sorted.

    Example::

        bundle_files("bundles/dhvae_brats")  # ['LICENSE', 'configs/common.yaml', ..., 'large_files.yml']
    """
    root = Path(bundle_dir)
    found = [name for name in ("LICENSE", *LARGE_FILES_NAMES) if (root / name).is_file()]
    for folder in BUNDLE_FOLDERS:
        for path in (root / folder).rglob("*"):
            relative = path.relative_to(root)
            if path.is_file() and _is_bundle_part(relative):
                found.append(relative.as_posix())
    return sorted(found)


def weight_files(models_dir: str | os.PathLike) -> list[Path]:
    """
    The weight files in a ``models/`` folder (``model.pt``, ``generator.pt``, ``model.ts``, ...), without hidden
    files such as ``.gitkeep``.

    Args:
        models_dir: a bundle's ``models/`` folder, or a run's ``models/`` folder.

    Returns:
        the files, sorted by name; empty when the folder does not exist.

    Example::

        [path.name for path in weight_files("runs/dhvae_brats/models")]  # ['generator.pt', 'model.pt', ...]
    """
    folder = Path(models_dir)
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.is_file() and _is_bundle_part(Path(path.name)))


def file_sha256(path: str | os.PathLike) -> str:
    """
    The SHA-256 of a file, read in chunks so that weights of any size fit in memory.

    Args:
        path: the file.

    Returns:
        the hex digest.

    Example::

        file_sha256("models/model.pt")  # '3f2a...'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find_large_files(bundle_dir: str | os.PathLike) -> Path | None:
    """
    The bundle's large-files list (``large_files.yml``, ``.yaml`` or ``.json``), or None when it has none.

    Args:
        bundle_dir: the bundle folder.

    Example::

        find_large_files("bundles/dhvae_brats")  # PosixPath('bundles/dhvae_brats/large_files.yml')
    """
    return next((Path(bundle_dir) / name for name in LARGE_FILES_NAMES if (Path(bundle_dir) / name).is_file()), None)


def read_large_files(path: str | os.PathLike) -> list[LargeFile]:
    """
    Read a large-files list (YAML or JSON, which YAML reads too).

    Args:
        path: the ``large_files.yml`` file.

    Returns:
        its entries, in file order.

    Raises:
        LargeFilesError: the file is not YAML, has no ``large_files`` list, or an entry is not a mapping with a
            relative ``path`` inside the bundle.

    Example::

        [entry.path for entry in read_large_files("bundles/dhvae_brats/large_files.yml")]  # []
    """
    path = Path(path)
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise LargeFilesError(path, f"not readable as YAML ({error}).") from error
    entries = content.get("large_files") if isinstance(content, dict) else None
    if not isinstance(entries, list):
        raise LargeFilesError(path, "expected a 'large_files' list (use 'large_files: []' when there is none).")
    result = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise LargeFilesError(path, f"entry {index} needs a 'path' (e.g. models/model.pt), got {entry!r}.")
        relative = Path(entry["path"])
        if relative.is_absolute() or ".." in relative.parts:
            raise LargeFilesError(path, f"entry {index} path {entry['path']!r} must be relative, inside the bundle.")
        unknown = set(entry) - {"path", "url", "hash_val", "hash_type"}
        if unknown:
            raise LargeFilesError(path, f"entry {entry['path']!r} has unknown keys {sorted(unknown)}.")
        result.append(LargeFile(**{key: str(value or "") for key, value in entry.items()}))
    return result


def dump_large_files(entries: Sequence[LargeFile], header: str = "") -> str:
    """
    A large-files list as YAML text, in the Model Zoo's format.

    Args:
        entries: the entries.
        header: comment lines to put first (without ``#``).

    Returns:
        the text of a ``large_files.yml``.

    Example::

        dump_large_files([LargeFile("models/model.pt", "", file_sha256("models/model.pt"), "sha256")])
    """
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comment + yaml.safe_dump({"large_files": [asdict(entry) for entry in entries]}, sort_keys=False)
