"""
The checks the MONAI Model Zoo's CI runs on a bundle, run offline:

    python -m dhvae_monai.bundle_check bundles/dhvae_brats

prints one line per failing check, each naming the file and the problem, and exits 1; it exits 0 when every check
holds. The checks follow the Model Zoo's ``ci/verify_bundle.py`` and its contribution rules:

- **files**: ``configs/metadata.json``, an inference config, ``configs/logging.conf``, ``LICENSE``, ``docs/README.md``
  and the data licence ``docs/data_license.txt`` exist and are not empty;
- **metadata**: ``metadata.json`` names the schema this check holds (``meta_schema_20240725.json``, shipped with the
  package, so nothing is downloaded) and validates against it;
- **version**: ``version`` is ``MAJOR.MINOR.PATCH`` with a ``changelog`` entry, and ``required_packages_version``
  pins this ``dhvae-monai``;
- **inference config**: it parses and defines ``bundle_root``, ``device``, ``network_def``, ``inferer`` and
  ``output_dir``;
- **large files**: every weight file that git does not track has a ``large_files.yml`` entry with its sha256 (and a
  ``url``), every entry's sha256 matches the file when present, and no committed file is over 25 MB. Outside a git
  work tree (an unpacked archive) the files listed in ``large_files.yml`` count as not committed;
- **README**: ``docs/README.md`` has the sections of the Model Zoo's README template;
- **weights**: trained ``models/model.pt``, when present, loads into ``network_def``;
- **network**: MONAI's ``verify_net_in_out`` on ``network_def``, with the trained weights when they load, else as
  initialised;
- **TorchScript**: MONAI's ``ckpt_export`` of ``models/model.pt``, or of random weights when there are none, and the
  exported module (and a provided ``models/model.ts``) loads.

``--config configs/phantom.yaml`` adds config files after the inference config (for weights trained with other
settings), ``--require-weights`` also fails without ``models/model.pt`` (the Zoo's preferred-files check), and
``--only CHECK`` runs some checks alone (all but ``network`` and ``torchscript`` take well under a second). Not checked
here: that the version is new to the Model Zoo (that needs the Zoo's ``model_info.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for
from monai.bundle import ConfigParser, ckpt_export, verify_net_in_out

from dhvae_monai import __version__
from dhvae_monai.bundle_files import LargeFile, LargeFilesError, bundle_files, file_sha256, find_large_files
from dhvae_monai.bundle_files import read_large_files, weight_files
from dhvae_monai.networks import load_weights

__all__ = [
    "CHECKS",
    "MAX_COMMITTED_BYTES",
    "README_SECTIONS",
    "SCHEMA_PATH",
    "SCHEMA_URL",
    "CheckFailure",
    "check_bundle",
    "main",
]

#: the checks, in the order they run and report
CHECKS = (
    "files",
    "metadata",
    "version",
    "inference_config",
    "large_files",
    "readme",
    "weights",
    "network",
    "torchscript",
)
#: the offline copy of the Model Zoo's metadata schema (Apache-2.0, MONAI Consortium; see schemas/README.md)
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "meta_schema_20240725.json"
SCHEMA_URL = "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json"
#: the Model Zoo's limit for a file in its repository (its CONTRIBUTING, "Model storage")
MAX_COMMITTED_BYTES = 25 * 1024 * 1024
#: the non-optional sections of the Model Zoo's README template (docs/readme_template.md)
README_SECTIONS = ("Authors", "Tags", "Model Description", "Data", "Performance", "System Configuration")
#: keys the Model Zoo asks of an inference config (its CONTRIBUTING, "Preferred Files and Keys")
INFERENCE_KEYS = ("bundle_root", "device", "network_def", "inferer", "output_dir")
REQUIRED_FILES = {
    "configs/metadata.json": "the bundle's metadata (MONAI bundle specification)",
    "configs/logging.conf": "the logging configuration `monai.bundle run` reads",
    "LICENSE": "the bundle's licence, required by the Model Zoo",
    "docs/README.md": "the bundle's documentation, in the Model Zoo's README format",
    "docs/data_license.txt": "the terms of the data the bundle was made for, required by the Model Zoo",
}
INFERENCE_CONFIGS = ("configs/inference.json", "configs/inference.yaml", "configs/inference.yml")
NETWORK_ID = "network_def"
WEIGHTS = "models/model.pt"
SEMVER = re.compile(r"\d+\.\d+\.\d+")


@dataclass(frozen=True)
class CheckFailure:
    """
    A failed check: which one, the file it concerns, and what is wrong.

    Args:
        check: one of :data:`CHECKS`.
        path: the file (inside the bundle folder as it was given).
        message: the problem and what to do about it.
    """

    check: str
    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class _Bundle:
    """What the checks share: the folder, its parsed metadata and inference configs, and what git tracks."""

    root: Path
    metadata: dict | None
    configs: list[str] | None
    tracked: set[str] | None
    large_files: Path | None
    entries: list[LargeFile]
    trained_network: torch.nn.Module | None = None  # network_def with models/model.pt loaded, once it loads

    def failure(self, check: str, relative: str | os.PathLike, message: str) -> CheckFailure:
        return CheckFailure(check, self.root / relative, message)


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else 'no message'}"


@contextlib.contextmanager
def _quiet_monai() -> Iterator[None]:
    # verify_net_in_out and ckpt_export log every argument at INFO level to stdout; the command prints failures only
    logger = logging.getLogger("monai.bundle.scripts")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _tracked_files(root: Path) -> set[str] | None:
    """The bundle's files that git tracks, relative to ``root``; None outside a git work tree (or without git)."""
    try:
        result = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=False)
    except OSError:
        return None
    tracked = {name for name in result.stdout.decode("utf-8", "replace").split("\0") if name}
    # a folder git ignores entirely (an archive unpacked in a work tree) is not a committed bundle either
    return tracked if result.returncode == 0 and tracked else None


def _check_files(bundle: _Bundle) -> list[CheckFailure]:
    failures = []
    for relative, what in REQUIRED_FILES.items():
        path = bundle.root / relative
        if not path.is_file():
            failures.append(bundle.failure("files", relative, f"missing: {what}."))
        elif path.stat().st_size == 0:
            failures.append(bundle.failure("files", relative, f"is empty: it should hold {what}."))
    if not any((bundle.root / name).is_file() for name in INFERENCE_CONFIGS):
        failures.append(
            bundle.failure(
                "files",
                "configs/inference.yaml",
                "missing: the inference config the Model Zoo verifies (.json or .yaml).",
            )
        )
    return failures


def _load_metadata(root: Path) -> tuple[dict | None, str | None]:
    path = root / "configs/metadata.json"
    if not path.is_file():
        return None, None
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"not valid JSON ({error})."
    if not isinstance(metadata, dict):
        return None, f"expected a JSON object, found {type(metadata).__name__}."
    return metadata, None


def _check_metadata(bundle: _Bundle, schema: Path) -> list[CheckFailure]:
    if bundle.metadata is None:
        return []
    metadata, relative = bundle.metadata, "configs/metadata.json"
    try:
        schema_content = json.loads(schema.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return [CheckFailure("metadata", schema, f"not a readable JSON schema ({error}).")]
    failures = []
    url = metadata.get("schema")
    if isinstance(url, str) and url.rsplit("/", 1)[-1] != schema.name:
        failures.append(
            bundle.failure(
                "metadata",
                relative,
                f"'schema' names {url.rsplit('/', 1)[-1]}, but this check holds {schema.name}: set 'schema' to "
                f"{SCHEMA_URL if schema == SCHEMA_PATH else schema.name}, or pass --schema with the file it names.",
            )
        )
    # MONAI's verify_metadata runs the same jsonschema validation, but its message drops which key failed
    errors = list(validator_for(schema_content)(schema_content).iter_errors(metadata))
    if errors:  # the most relevant one: fixing it and checking again shows the next
        error = best_match(errors)
        failures.append(
            bundle.failure(
                "metadata", relative, f"fails the schema {schema.name} at {error.json_path}: {error.message}."
            )
        )
    return failures


def _check_version(bundle: _Bundle) -> list[CheckFailure]:
    if bundle.metadata is None:
        return []
    metadata, relative, failures = bundle.metadata, "configs/metadata.json", []
    version = metadata.get("version")
    if isinstance(version, str):  # a missing or non-string version is the schema check's to report
        if not SEMVER.fullmatch(version):
            failures.append(bundle.failure("version", relative, f"'version' {version!r} is not MAJOR.MINOR.PATCH."))
        changelog = metadata.get("changelog")
        if not isinstance(changelog, dict) or version not in changelog:
            failures.append(
                bundle.failure(
                    "version",
                    relative,
                    f"'changelog' has no entry for version {version}: add one that says what changed.",
                )
            )
    pins = metadata.get("required_packages_version")
    if isinstance(pins, dict) and pins.get("dhvae-monai") != __version__:
        failures.append(
            bundle.failure(
                "version",
                relative,
                f"required_packages_version pins dhvae-monai {pins.get('dhvae-monai')!r}, but this is dhvae-monai "
                f"{__version__} and the Model Zoo installs the pinned one: set it to {__version__!r}.",
            )
        )
    return failures


def _inference_configs(root: Path, extra_configs: Sequence[str]) -> list[str] | None:
    inference = next((root / name for name in INFERENCE_CONFIGS if (root / name).is_file()), None)
    return None if inference is None else [str(inference), *(str(root / name) for name in extra_configs)]


def _parser(bundle: _Bundle) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(bundle.configs)
    parser["bundle_root"] = str(bundle.root)
    return parser


def _check_inference_config(bundle: _Bundle) -> list[CheckFailure]:
    if bundle.configs is None:
        return []
    relative = Path(bundle.configs[0]).relative_to(bundle.root)
    for config in bundle.configs[1:]:
        if not Path(config).is_file():
            return [
                bundle.failure(
                    "inference_config", Path(config).relative_to(bundle.root), "missing (given with --config)."
                )
            ]
    try:
        parser = _parser(bundle)
    except Exception as error:  # JSON and YAML readers raise their own types
        return [bundle.failure("inference_config", relative, f"cannot be read: {_one_line(error)}")]
    missing = [key for key in INFERENCE_KEYS if key not in parser]
    if missing:
        return [
            bundle.failure(
                "inference_config", relative, f"defines no {', '.join(missing)} (keys the Model Zoo requires)."
            )
        ]
    return []


def _check_large_files(bundle: _Bundle) -> list[CheckFailure]:
    failures = []
    listed_name = bundle.large_files.name if bundle.large_files is not None else "large_files.yml"
    listed = {entry.path for entry in bundle.entries}
    state = "committed" if bundle.tracked is not None else "in the bundle"

    def shipped(relative: str) -> bool:
        return relative in bundle.tracked if bundle.tracked is not None else (bundle.root / relative).is_file()

    for entry in bundle.entries:
        path = bundle.root / entry.path
        if entry.hash_type != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", entry.hash_val):
            failures.append(
                bundle.failure(
                    "large_files",
                    listed_name,
                    f"{entry.path}: give its sha256 (hash_type: sha256, hash_val: 64 hex digits), found "
                    f"hash_type {entry.hash_type!r}, hash_val {entry.hash_val!r}.",
                )
            )
        elif path.is_file() and file_sha256(path) != entry.hash_val:
            failures.append(
                bundle.failure(
                    "large_files",
                    listed_name,
                    f"{entry.path} has sha256 {file_sha256(path)}, but its entry says {entry.hash_val}: it is not the "
                    "file the entry describes (update hash_val and url, or restore the file).",
                )
            )
        if not entry.url and not shipped(entry.path):
            failures.append(
                bundle.failure(
                    "large_files",
                    listed_name,
                    f"{entry.path} is not {state} and its entry has no url to download it from: upload it and set url.",
                )
            )
    if bundle.tracked is not None:
        for weights in weight_files(bundle.root / "models"):
            relative = weights.relative_to(bundle.root).as_posix()
            if relative not in bundle.tracked and relative not in listed:
                failures.append(
                    bundle.failure(
                        "large_files",
                        relative,
                        f"not committed and {listed_name} has no entry for it: add path {relative}, its url and "
                        f"hash_type sha256, hash_val {file_sha256(weights)}.",
                    )
                )
    committed = bundle.tracked if bundle.tracked is not None else set(bundle_files(bundle.root)) - listed
    for relative in sorted(committed):
        path = bundle.root / relative
        if path.is_file() and path.stat().st_size > MAX_COMMITTED_BYTES:
            failures.append(
                bundle.failure(
                    "large_files",
                    relative,
                    f"{path.stat().st_size / 2**20:.1f} MB is over the Model Zoo's 25 MB limit for a committed file: "
                    f"leave it out of git and list it in {listed_name} with its url and sha256.",
                )
            )
    return failures


def _readme_headings(text: str) -> set[str]:
    headings, in_code = set(), False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code and (match := re.match(r"#{1,6}\s+(.+)", line)):
            title = re.sub(r"\(optional\)\s*$", "", match.group(1).replace("*", ""), flags=re.IGNORECASE)
            headings.add(title.strip().lower())
    return headings


def _check_readme(bundle: _Bundle) -> list[CheckFailure]:
    path = bundle.root / "docs/README.md"
    if not path.is_file():
        return []
    headings = _readme_headings(path.read_text(encoding="utf-8", errors="replace"))
    missing = [section for section in README_SECTIONS if section.lower() not in headings]
    if missing:
        names = ", ".join(repr(section) for section in missing)
        sections = "sections" if len(missing) > 1 else "section"
        return [
            bundle.failure("readme", "docs/README.md", f"has no {names} {sections} (the Model Zoo's README template).")
        ]
    return []


def _check_weights(bundle: _Bundle, require_weights: bool) -> list[CheckFailure]:
    if bundle.configs is None:
        return []
    path = bundle.root / WEIGHTS
    if not path.is_file():
        if require_weights and WEIGHTS not in {entry.path for entry in bundle.entries}:
            return [
                bundle.failure(
                    "weights",
                    WEIGHTS,
                    "missing, and large_files.yml has no entry for it: the Model Zoo expects trained weights (run the "
                    "train_segmentation stage, or check without --require-weights).",
                )
            ]
        return []
    try:
        bundle.trained_network = load_weights(
            _parser(bundle).get_parsed_content(NETWORK_ID), path, produced_by="train_segmentation"
        )
    except Exception as error:  # a config that does not build is the network check's to report
        message = str(error).replace(f"{path} ", "", 1) if isinstance(error, ValueError) else _one_line(error)
        config = Path(bundle.configs[0]).name
        return [bundle.failure("weights", WEIGHTS, f"does not load into {NETWORK_ID} of configs/{config}: {message}")]
    return []


def _check_network(bundle: _Bundle) -> list[CheckFailure]:
    if bundle.configs is None or bundle.metadata is None:
        return []
    # with trained weights, the network they are loaded into replaces the config's (an override, as on the CLI)
    trained = {} if bundle.trained_network is None else {NETWORK_ID: bundle.trained_network}
    try:
        with _quiet_monai():
            verify_net_in_out(
                net_id=NETWORK_ID,
                meta_file=str(bundle.root / "configs/metadata.json"),
                config_file=bundle.configs,
                bundle_root=str(bundle.root),
                **trained,
            )
    except Exception as error:  # MONAI raises KeyError, ValueError, RuntimeError from the network itself
        relative = Path(bundle.configs[0]).relative_to(bundle.root)
        return [
            bundle.failure(
                "network", relative, f"verify_net_in_out {NETWORK_ID} against metadata.json fails: {_one_line(error)}"
            )
        ]
    return []


def _check_torchscript(bundle: _Bundle, weights_failed: bool) -> list[CheckFailure]:
    if bundle.configs is None or bundle.metadata is None or weights_failed:
        return []
    weights = bundle.root / WEIGHTS
    failures = []
    with tempfile.TemporaryDirectory() as scratch:
        try:
            if not weights.is_file():
                # no trained weights: export random ones, as the Model Zoo's CI does, to check the network scripts
                weights = Path(scratch) / "random_weights.pt"
                torch.save(_parser(bundle).get_parsed_content(NETWORK_ID).state_dict(), weights)
            exported = Path(scratch) / "model.ts"
            with _quiet_monai():
                ckpt_export(
                    net_id=NETWORK_ID,
                    filepath=str(exported),
                    ckpt_file=str(weights),
                    meta_file=str(bundle.root / "configs/metadata.json"),
                    config_file=bundle.configs,
                    bundle_root=str(bundle.root),
                )
            torch.jit.load(exported)
        except Exception as error:  # scripting errors come from torch.jit in many types
            relative = Path(bundle.configs[0]).relative_to(bundle.root)
            failures.append(
                bundle.failure(
                    "torchscript", relative, f"ckpt_export {NETWORK_ID} to TorchScript fails: {_one_line(error)}"
                )
            )
    provided = bundle.root / "models/model.ts"
    if provided.is_file():
        try:
            torch.jit.load(provided)
        except Exception as error:  # torch.jit.load raises RuntimeError or ValueError by version
            failures.append(
                bundle.failure(
                    "torchscript", "models/model.ts", f"does not load with torch.jit.load: {_one_line(error)}"
                )
            )
    return failures


def check_bundle(
    bundle_dir: str | os.PathLike,
    schema: str | os.PathLike | None = None,
    extra_configs: Sequence[str] = (),
    require_weights: bool = False,
    checks: Sequence[str] = CHECKS,
) -> list[CheckFailure]:
    """
    Run the Model Zoo's checks on a bundle folder (see the module docstring for the list).

    Args:
        bundle_dir: the bundle folder.
        schema: the metadata schema to validate against; default: the shipped ``meta_schema_20240725.json``.
        extra_configs: config files, relative to the bundle, read after the inference config (as
            ``python -m monai.bundle run --config_file`` merges them), e.g. ``["configs/phantom.yaml"]`` for weights
            trained with the phantom settings.
        require_weights: also fail when ``models/model.pt`` is neither present nor listed in ``large_files.yml``
            (the Model Zoo's preferred-files check).
        checks: the checks to run, names from :data:`CHECKS`; default: all. Without ``network`` and ``torchscript``
            the rest takes well under a second.

    Returns:
        the failures, in the order of :data:`CHECKS`; empty when the bundle passes.

    Raises:
        ValueError: ``checks`` names an unknown check.

    Example::

        for failure in check_bundle("bundles/dhvae_brats"):
            print(failure)  # e.g. bundles/dhvae_brats/docs/README.md: has no 'Performance' section (...)
    """
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown checks {unknown}: choose from {', '.join(CHECKS)}.")
    root = Path(bundle_dir)
    if not root.is_dir():
        return [CheckFailure("files", root, "not a folder: give the bundle folder (the one holding configs/).")]
    metadata, metadata_problem = _load_metadata(root)
    large_files, entries, large_files_problem = find_large_files(root), [], None
    if large_files is not None:
        try:
            entries = read_large_files(large_files)
        except LargeFilesError as error:
            large_files_problem = CheckFailure("large_files", root / large_files.name, error.problem)
    bundle = _Bundle(
        root, metadata, _inference_configs(root, extra_configs), _tracked_files(root), large_files, entries
    )

    found = {"files": _check_files(bundle)}
    found["metadata"] = _check_metadata(bundle, Path(schema) if schema is not None else SCHEMA_PATH)
    if metadata_problem is not None:
        found["metadata"].insert(0, bundle.failure("metadata", "configs/metadata.json", metadata_problem))
    found["version"] = _check_version(bundle)
    found["inference_config"] = _check_inference_config(bundle)
    if found["inference_config"]:  # the network checks need a config that reads
        bundle.configs = None
    found["large_files"] = ([large_files_problem] if large_files_problem else []) + _check_large_files(bundle)
    found["readme"] = _check_readme(bundle)
    if {"weights", "network", "torchscript"} & set(checks):
        found["weights"] = _check_weights(bundle, require_weights)
    if "network" in checks:
        found["network"] = _check_network(bundle)
    if "torchscript" in checks:
        # weights that do not load into the network are the weights check's to report, not ckpt_export's
        found["torchscript"] = _check_torchscript(bundle, weights_failed=bool(found["weights"]))
    return [failure for check in CHECKS if check in checks for failure in found[check]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dhvae_monai.bundle_check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bundle_dir", help="the bundle folder, e.g. bundles/dhvae_brats")
    parser.add_argument(
        "--schema", default=None, metavar="FILE", help=f"metadata schema file; default: the shipped {SCHEMA_PATH.name}"
    )
    parser.add_argument(
        "--config",
        dest="extra_configs",
        action="append",
        default=[],
        metavar="FILE",
        help="a config file (relative to the bundle) read after the inference config, e.g. configs/phantom.yaml for "
        "weights trained with the phantom settings; may be repeated",
    )
    parser.add_argument(
        "--require-weights",
        action="store_true",
        help="fail when models/model.pt is neither present nor in large_files.yml",
    )
    parser.add_argument(
        "--only",
        dest="checks",
        action="append",
        choices=CHECKS,
        default=None,
        metavar="CHECK",
        help=f"run only this check ({', '.join(CHECKS)}); may be repeated; default: all",
    )
    args = parser.parse_args(argv)
    checks = tuple(args.checks or CHECKS)
    failures = check_bundle(args.bundle_dir, args.schema, args.extra_configs, args.require_weights, checks)
    for failure in failures:
        print(failure)
    if not failures:
        print(f"{args.bundle_dir}: passes the Model Zoo checks ({', '.join(checks)}).")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
