"""
The folder and file-name layouts of BraTS, the Medical Segmentation Decathlon and HECKTOR downloads: recognising
them and finding each case's files (by name only, no image is opened).

Case ids come from file names, so renamed or re-nested case folders do not matter, and images and masks may sit in
different folders. Only the ``custom`` layout, whose patterns need not contain the id, names a case by its folder.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = [
    "LAYOUTS",
    "LAYOUT_MODALITIES",
    "LAYOUT_LABEL_CONVENTIONS",
    "LAYOUT_FILES",
    "DatalistError",
    "CaseFiles",
    "find_cases",
    "detect_layout",
]

NIFTI_EXTENSIONS = (".nii.gz", ".nii")
BRAIN_MODALITIES = ("flair", "t1", "t1ce", "t2")
HEAD_NECK_MODALITIES = ("pt", "ct")  # PET first: the paper generates PET
# canonical modalities of each detectable layout, in channel order; MSD's 4D images hold the same four channels
LAYOUT_MODALITIES: dict[str, tuple[str, ...]] = {
    "brats2021": BRAIN_MODALITIES,
    "brats2023": BRAIN_MODALITIES,
    "msd": BRAIN_MODALITIES,
    "hecktor2021": HEAD_NECK_MODALITIES,
    "hecktor2022": HEAD_NECK_MODALITIES,
}
LAYOUTS = (*LAYOUT_MODALITIES, "custom")
# meaning of each layout's raw label values (see dhvae_monai.transforms.labels.LABEL_CONVENTIONS)
LAYOUT_LABEL_CONVENTIONS = {layout: layout for layout in LAYOUT_MODALITIES}
# what each layout looks like, for error messages
LAYOUT_FILES = {
    "brats2021": "<case>_{flair,t1,t1ce,t2,seg}.nii.gz",
    "brats2023": "<case>-{t2f,t1n,t1c,t2w,seg}.nii.gz",
    "msd": "dataset.json with 4D imagesTr/<case>.nii.gz and labelsTr/<case>.nii.gz",
    "hecktor2021": "<case>_{pt,ct}.nii.gz with <case>_gtvt.nii.gz (2021) or <case>_ct_gtvt.nii.gz (2020)",
    "hecktor2022": "imagesTr/<case>__{PT,CT}.nii.gz with labelsTr/<case>.nii.gz",
}
# file-name suffixes (before the extension) of each slot, for the layouts whose names carry the case id;
# several suffixes are alternatives, and an empty label tuple means labelsTr/<case> beside the images' folder
NAME_SUFFIXES: dict[str, dict[str, tuple[str, ...]]] = {
    "brats2021": {"flair": ("_flair",), "t1": ("_t1",), "t1ce": ("_t1ce",), "t2": ("_t2",), "label": ("_seg",)},
    "brats2023": {"flair": ("-t2f",), "t1": ("-t1n",), "t1ce": ("-t1c",), "t2": ("-t2w",), "label": ("-seg",)},
    "hecktor2021": {"pt": ("_pt",), "ct": ("_ct",), "label": ("_ct_gtvt", "_gtvt")},
    "hecktor2022": {"pt": ("__PT",), "ct": ("__CT",), "label": ()},
}
MSD_CHANNELS = ("flair", "t1w", "t1gd", "t2w")  # Task01_BrainTumour's dataset.json "modality", lower-cased
BOUNDING_BOX_COLUMNS = ("x1", "x2", "y1", "y2", "z1", "z2")


class DatalistError(ValueError):
    """A dataset folder cannot be turned into a datalist; the message names the folder or case and the problem."""


@dataclass
class CaseFiles:
    """
    The files found for one case.

    Attributes:
        case_id: patient / case identifier.
        files: slot (a modality name, ``"image"`` for an MSD 4D image, or ``"label"``) -> file.
        expected: slot -> where its file was looked for (relative to the scanned root), to report missing files.
        duplicates: slot -> every file found for it, when more than one was.
        extra: further item entries (HECKTOR 2021's ``bounding_box_mm``).
    """

    case_id: str
    files: dict[str, Path] = field(default_factory=dict)
    expected: dict[str, str] = field(default_factory=dict)
    duplicates: dict[str, list[Path]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, slot: str, path: Path) -> None:
        """Record ``path`` for ``slot``; a second, different file for the same slot is kept as a duplicate."""
        if slot in self.files and self.files[slot] != path:
            self.duplicates.setdefault(slot, [self.files[slot]]).append(path)
        else:
            self.files[slot] = path

    def missing(self, slots: Sequence[str]) -> list[str]:
        """The slots of ``slots`` without a file."""
        return [slot for slot in slots if slot not in self.files]


def _split_extension(name: str) -> tuple[str, str]:
    for extension in NIFTI_EXTENSIONS:
        if name.endswith(extension) and len(name) > len(extension):
            return name[: -len(extension)], extension
    return name, ""


def _walk(root: Path) -> tuple[list[Path], list[Path]]:
    """Folders and NIfTI files below ``root``, sorted, leaving out hidden ones (macOS ``._*`` copies in archives)."""
    folders, files = [], []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        folders.append(Path(folder))
        visible = (name for name in sorted(names) if not name.startswith("."))
        files.extend(Path(folder) / name for name in visible if name.endswith(NIFTI_EXTENSIONS))
    return folders, files


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _find_named_cases(root: Path, layout: str, files: Sequence[Path]) -> list[CaseFiles]:
    suffixes = NAME_SUFFIXES[layout]
    # longest suffix first, so "X_ct_gtvt" is the mask of X rather than the "_gtvt" mask of "X_ct"
    ordered = sorted(
        ((suffix, slot) for slot, options in suffixes.items() for suffix in options), key=lambda pair: -len(pair[0])
    )
    cases: dict[str, CaseFiles] = {}
    for path in files:
        stem, _ = _split_extension(path.name)
        for suffix, slot in ordered:
            if stem.endswith(suffix) and len(stem) > len(suffix):
                case_id = stem[: -len(suffix)]
                cases.setdefault(case_id, CaseFiles(case_id)).add(slot, path)
                break
    if not suffixes["label"]:
        for path in files:  # only masks of cases whose images were found: MSD's labelsTr must not look like HECKTOR
            stem, _ = _split_extension(path.name)
            if path.parent.name == "labelsTr" and stem in cases:
                cases[stem].add("label", path)
    for case in cases.values():
        reference = next(iter(case.files.values()))
        _, extension = _split_extension(reference.name)
        for slot, options in suffixes.items():
            if options:
                names = " or ".join(f"{case.case_id}{suffix}{extension}" for suffix in options)
                case.expected[slot] = f"{_relative(reference.parent, root)}/{names}"
            else:
                label = reference.parent.parent / "labelsTr" / f"{case.case_id}{extension}"
                case.expected[slot] = _relative(label, root)
    return list(cases.values())


def _find_msd_cases(root: Path, folders: Sequence[Path]) -> list[CaseFiles]:
    cases: dict[str, CaseFiles] = {}
    for folder in folders:
        description_path = folder / "dataset.json"
        if not description_path.is_file():
            continue
        try:
            description = json.loads(description_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DatalistError(f"cannot read {description_path} as JSON: {error}.") from error
        if not isinstance(description, dict) or not isinstance(description.get("training"), list):
            continue
        channels = description.get("modality")
        if isinstance(channels, dict) and tuple(str(channels[k]).lower() for k in sorted(channels)) != MSD_CHANNELS:
            continue  # another Decathlon task
        for entry in description["training"]:
            if not (isinstance(entry, dict) and all(isinstance(entry.get(key), str) for key in ("image", "label"))):
                raise DatalistError(
                    f"{description_path}: each 'training' entry needs 'image' and 'label' paths, got {entry!r}."
                )
            image = Path(os.path.normpath(folder / entry["image"]))
            label = Path(os.path.normpath(folder / entry["label"]))
            case_id, _ = _split_extension(image.name)
            case = cases.setdefault(case_id, CaseFiles(case_id))
            for slot, path in (("image", image), ("label", label)):
                case.expected[slot] = _relative(path, root)
                if path.is_file():
                    case.add(slot, path)
    return list(cases.values())


def _find_custom_cases(
    root: Path, folders: Sequence[Path], patterns: Mapping[str, str]
) -> list[CaseFiles]:
    cases = []
    for folder in folders:
        case = CaseFiles(folder.name)
        for slot, pattern in patterns.items():
            case.expected[slot] = f"{_relative(folder, root)}/{pattern}"
            for path in sorted(folder.glob(pattern)):
                if path.is_file() and not path.name.startswith("."):
                    case.add(slot, path)
        if case.files:
            cases.append(case)
    return cases


def _attach_bounding_boxes(root: Path, cases: Sequence[CaseFiles]) -> None:
    """HECKTOR 2021's CSVs of 144 mm boxes around the oropharynx: each case with a row gets ``bounding_box_mm``."""
    boxes: dict[str, list[float]] = {}
    for csv_path in sorted(root.rglob("*bbox*.csv")):
        with open(csv_path, newline="") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                try:
                    boxes[row["PatientID"]] = [float(row[column]) for column in BOUNDING_BOX_COLUMNS]
                except (KeyError, TypeError, ValueError) as error:
                    raise DatalistError(
                        f"{csv_path}, line {line}: expected columns PatientID,{','.join(BOUNDING_BOX_COLUMNS)} with "
                        f"numbers in mm ({type(error).__name__}: {error})."
                    ) from error
    for case in cases:
        if case.case_id in boxes:
            case.extra["bounding_box_mm"] = boxes[case.case_id]


def _check_custom_patterns(patterns: Mapping[str, str] | None) -> None:
    if not patterns or "label" not in patterns or len(patterns) < 2:
        raise DatalistError(
            "layout='custom' needs one glob pattern per modality and one for the mask ('label'), relative to a case "
            "folder, e.g. patterns={'flair': 'Flair_*.nii.gz', 't1ce': 'T1c_*.nii.gz', 'label': 'OTMultiClass.nii.gz'}"
            f" (got {patterns!r})."
        )
    if "image" in patterns:
        raise DatalistError(f"'image' is the item key of the image paths, not a modality name (patterns={patterns}).")


def _find_cases(
    root: Path,
    layout: str,
    tree: tuple[list[Path], list[Path]],
    patterns: Mapping[str, str] | None,
) -> list[CaseFiles]:
    folders, files = tree
    if layout == "msd":
        cases = _find_msd_cases(root, folders)
    elif layout == "custom":
        _check_custom_patterns(patterns)
        cases = _find_custom_cases(root, folders, patterns)
    else:
        cases = _find_named_cases(root, layout, files)
    return sorted(cases, key=lambda case: case.case_id)


def find_cases(
    root: str | os.PathLike, layout: str, patterns: Mapping[str, str] | None = None
) -> list[CaseFiles]:
    """
    Find every case of ``layout`` below ``root`` (recursively), complete or not, sorted by case id.

    Args:
        root: dataset folder.
        layout: one of :data:`LAYOUTS`.
        patterns: ``custom`` only: modality name -> glob relative to a case folder, in channel order, and
            ``"label"`` -> glob of the mask.

    Returns:
        the cases; check :meth:`CaseFiles.missing` and :attr:`CaseFiles.duplicates` before use.

    Raises:
        DatalistError: unknown layout, ``custom`` without patterns, an unreadable ``dataset.json`` or bounding-box CSV.

    Example::

        cases = find_cases("/data/BraTS2021_Training_Data", "brats2021")
    """
    root = Path(root)
    if layout not in LAYOUTS:
        raise DatalistError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}.")
    cases = _find_cases(root, layout, _walk(root), patterns)
    if layout == "hecktor2021":
        _attach_bounding_boxes(root, cases)
    return cases


def detect_layout(root: str | os.PathLike, modalities: Sequence[str] | None = None) -> tuple[str, list[CaseFiles]]:
    """
    Recognise which known layout (every one of :data:`LAYOUTS` but ``custom``) a dataset folder holds.

    The layout is the only one with a complete case (every requested modality and the mask). Without any complete
    case, a single partially matching layout is returned, so that its missing files can be reported.

    Args:
        root: dataset folder, searched recursively.
        modalities: modalities that a complete case needs (default: all of the layout's); layouts without them are
            not considered.

    Returns:
        the layout's name and its cases (as :func:`find_cases`).

    Raises:
        DatalistError: no known layout matches (naming those tried), or several do.

    Example::

        layout, cases = detect_layout("/data/hecktor2021_train")
    """
    root = Path(root)
    tree = _walk(root)
    complete, partial = {}, {}
    for layout, available in LAYOUT_MODALITIES.items():
        if modalities is not None and not set(modalities) <= set(available):
            continue
        cases = _find_cases(root, layout, tree, None)
        required = ["image", "label"] if layout == "msd" else [*(modalities or available), "label"]
        num_complete = sum(not case.missing(required) for case in cases)
        if num_complete:
            complete[layout] = (num_complete, cases)
        elif cases:
            partial[layout] = (0, cases)
    matches = complete or partial
    if len(matches) == 1:
        layout, (_, cases) = next(iter(matches.items()))
        if layout == "hecktor2021":
            _attach_bounding_boxes(root, cases)
        return layout, cases
    if not matches:
        tried = "; ".join(f"{layout} ({LAYOUT_FILES[layout]})" for layout in LAYOUT_MODALITIES)
        wanted = f" with modalities {list(modalities)}" if modalities else ""
        raise DatalistError(
            f"no known dataset layout{wanted} found in {root}; tried {tried}. For other file names use "
            "layout='custom' with one glob pattern per modality and one for the mask ('label')."
        )
    found = ", ".join(f"{name} ({count} complete case(s) of {len(cases)})" for name, (count, cases) in matches.items())
    raise DatalistError(f"{root} matches several layouts: {found}; pass layout= (--layout) to choose one.")
