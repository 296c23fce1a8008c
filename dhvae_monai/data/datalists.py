"""
Dataset folders as downloaded from the challenges → MONAI datalists with patient-level splits.

Command line::

    python -m dhvae_monai.data.datalists ROOT --output datalist.json [--layout auto|brats2021|...|custom]
        [--modalities flair t1ce] [--pattern flair='Flair*.nii.gz' --pattern label='OT*.nii.gz'
        --label-convention brats2015] [--val 0.2] [--test 0.2] [--folds K] [--seed S] [--skip-incomplete]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from dhvae_monai.utils.atomic import atomic_path

__all__ = ["LAYOUTS", "MODALITIES", "LABEL_CONVENTIONS", "DatalistError", "make_datalist", "write_datalist", "main"]

LAYOUTS = ("brats2021", "brats2023", "msd", "hecktor2021", "hecktor2022", "custom")
# canonical modality names and order of each family of layouts (PET first for HECKTOR: the paper uses PET)
BRAIN_MODALITIES = ("flair", "t1", "t1ce", "t2")
HEAD_NECK_MODALITIES = ("pt", "ct")
MODALITIES = {
    "brats2021": BRAIN_MODALITIES,
    "brats2023": BRAIN_MODALITIES,
    "msd": BRAIN_MODALITIES,
    "hecktor2021": HEAD_NECK_MODALITIES,
    "hecktor2022": HEAD_NECK_MODALITIES,
}
# label convention of each layout: the meaning of its raw label values (see dhvae_monai.transforms.labels)
LABEL_CONVENTIONS = {
    "brats2021": "brats2021",
    "brats2023": "brats2023",
    "msd": "msd",
    "hecktor2021": "hecktor2021",
    "hecktor2022": "hecktor2022",
}
# file-name suffix of each modality and of the label, for the layouts named by suffix
SUFFIXES = {
    "brats2021": {"flair": "_flair.nii.gz", "t1": "_t1.nii.gz", "t1ce": "_t1ce.nii.gz", "t2": "_t2.nii.gz", "label": "_seg.nii.gz"},
    "brats2023": {"flair": "-t2f.nii.gz", "t1": "-t1n.nii.gz", "t1ce": "-t1c.nii.gz", "t2": "-t2w.nii.gz", "label": "-seg.nii.gz"},
    "hecktor2021": {"pt": "_pt.nii.gz", "ct": "_ct.nii.gz", "label": "_ct_gtvt.nii.gz"},
    "hecktor2022": {"pt": "__PT.nii.gz", "ct": "__CT.nii.gz"},
}


class DatalistError(ValueError):
    """A dataset folder cannot be turned into a datalist; the message names the folder or case and the problem."""


@dataclass
class _Case:
    case_id: str
    files: dict[str, Path]  # modality name or "label" -> path
    extra: dict


def _scan_suffix_layout(root: Path, layout: str, files: list[Path]) -> dict[tuple[str, str], _Case]:
    suffixes = SUFFIXES[layout]
    # longest suffix first, so "_ct_gtvt.nii.gz" is not read as a "_ct.nii.gz" of case "X_ct"
    ordered = sorted(suffixes.items(), key=lambda item: -len(item[1]))
    cases: dict[tuple[str, str], _Case] = {}
    for path in files:
        for name, suffix in ordered:
            if path.name.endswith(suffix) and len(path.name) > len(suffix):
                case_id = path.name[: -len(suffix)]
                folder = path.parent.parent if layout == "hecktor2022" else path.parent
                case = cases.setdefault((str(folder), case_id), _Case(case_id, {}, {}))
                case.files[name] = path
                break
    if layout == "hecktor2022":
        for (folder, case_id), case in cases.items():
            label = Path(folder) / "labelsTr" / f"{case_id}.nii.gz"
            if label.is_file():
                case.files["label"] = label
    return cases


def _scan_msd(root: Path) -> dict[tuple[str, str], _Case]:
    cases: dict[tuple[str, str], _Case] = {}
    for description_path in sorted(root.rglob("dataset.json")):
        try:
            description = json.loads(description_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise DatalistError(f"cannot read {description_path}: {error}") from error
        if not isinstance(description, dict) or "training" not in description:
            continue
        folder = description_path.parent
        for entry in description["training"]:
            image, label = folder / entry["image"], folder / entry["label"]
            case_id = Path(entry["image"]).name.split(".")[0]
            files = {"image": image} if image.is_file() else {}
            if label.is_file():
                files["label"] = label
            cases[(str(folder), case_id)] = _Case(case_id, files, {})
    return cases


def _scan_custom(root: Path, patterns: Mapping[str, str]) -> dict[tuple[str, str], _Case]:
    if "label" not in patterns or len(patterns) < 2:
        raise DatalistError(
            "the custom layout needs one glob pattern per modality and one for the label, e.g. "
            "patterns={'flair': 'Flair*.nii.gz', 'label': 'OTMultiClass.nii.gz'}."
        )
    cases: dict[tuple[str, str], _Case] = {}
    for folder in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
        found: dict[str, Path] = {}
        for name, pattern in patterns.items():
            matches = sorted(p for p in folder.glob(pattern) if p.is_file())
            if len(matches) > 1:
                raise DatalistError(
                    f"pattern {name}={pattern!r} matches {len(matches)} files in {folder} "
                    f"({', '.join(m.name for m in matches[:3])}...); make it match one file per case."
                )
            if matches:
                found[name] = matches[0]
        if found:
            cases[(str(folder), folder.name)] = _Case(folder.name, found, {})
    return cases


def _scan(root: Path, layout: str, patterns: Mapping[str, str] | None, nifti_files: list[Path]) -> dict:
    if layout == "msd":
        return _scan_msd(root)
    if layout == "custom":
        return _scan_custom(root, patterns or {})
    return _scan_suffix_layout(root, layout, nifti_files)


def _required_files(layout: str, modalities: Sequence[str]) -> list[str]:
    return (["image"] if layout == "msd" else list(modalities)) + ["label"]


def _attach_bounding_boxes(root: Path, cases: list[_Case]) -> None:
    """HECKTOR 2021 ships a CSV of 144 mm boxes around the oropharynx: keep each case's row if present."""
    boxes = {}
    for csv_path in sorted(root.rglob("*bbox*.csv")):
        with open(csv_path, newline="") as handle:
            for row in csv.DictReader(handle):
                try:
                    boxes[row["PatientID"]] = [float(row[k]) for k in ("x1", "x2", "y1", "y2", "z1", "z2")]
                except (KeyError, ValueError) as error:
                    raise DatalistError(f"{csv_path}: expected columns PatientID,x1,x2,y1,y2,z1,z2 ({error}).") from error
    for case in cases:
        if case.case_id in boxes:
            case.extra["bounding_box_mm"] = boxes[case.case_id]


def _split_sizes(num_cases: int, val: float | int, test: float | int) -> tuple[int, int]:
    def size(value: float | int, name: str) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        if not 0.0 <= float(value) < 1.0:
            raise DatalistError(f"{name} must be a fraction in [0, 1) or a count >= 1, got {value}.")
        return max(1, round(float(value) * num_cases)) if value > 0 else 0

    num_val, num_test = size(val, "val"), size(test, "test")
    if num_cases - num_val - num_test < 1:
        raise DatalistError(
            f"{num_cases} complete case(s) cannot be split into {num_val} validation + {num_test} test cases and at "
            "least one training case; lower val / test or add cases."
        )
    return num_val, num_test


def make_datalist(
    root: str | os.PathLike,
    layout: str = "auto",
    modalities: Sequence[str] | None = None,
    patterns: Mapping[str, str] | None = None,
    label_convention: str | None = None,
    val: float | int = 0.2,
    test: float | int = 0.2,
    num_folds: int | None = None,
    seed: int = 0,
    skip_incomplete: bool = False,
) -> dict:
    """
    Scan a dataset folder, recognise its layout and build a MONAI datalist with patient-level splits.

    Layouts (searched recursively below ``root``, so point at the download's top folder):

    - ``brats2021`` (BraTS 2018–2021): ``<case>_{flair,t1,t1ce,t2,seg}.nii.gz``
    - ``brats2023`` (and later): ``<case>-{t2f,t1n,t1c,t2w,seg}.nii.gz``
    - ``msd`` (Decathlon Task01_BrainTumour): ``dataset.json`` with 4D ``imagesTr`` and ``labelsTr``
    - ``hecktor2021``: ``<case>_{pt,ct,ct_gtvt}.nii.gz`` (+ the bounding-box CSV, kept as ``bounding_box_mm``)
    - ``hecktor2022`` (and later): ``imagesTr/<case>__{PT,CT}.nii.gz``, ``labelsTr/<case>.nii.gz``
    - ``custom``: one glob pattern per modality and one for ``label``, relative to each case folder (the folder
      name is the case id); give ``label_convention`` (default ``binary``).

    Case ids come from file names, so a renamed case folder does not matter. Each item is
    ``{"image": [one absolute path per modality], "label": path, "case_id", "modalities", "label_convention"}``;
    modalities are in canonical order (``flair, t1, t1ce, t2`` for brains, BraTS 2023 names mapped onto them;
    ``pt, ct`` for head and neck). An MSD item's ``image`` is its single 4D file and ``modalities`` names its four
    channels (the transforms select channels by name).

    Args:
        root: dataset folder.
        layout: one of :data:`LAYOUTS` or ``"auto"`` (the known layout with the most complete cases; ``custom`` must
            be asked for).
        modalities: subset to list (default all of the layout), kept in canonical order; for ``custom`` the order of
            ``patterns``.
        patterns: for ``custom``: ``{modality: glob, ..., "label": glob}``.
        label_convention: raw label meaning (``brats2021``, ``brats2023``, ``brats2015``, ``msd``, ``hecktor2021``,
            ``hecktor2022``, ``binary``); defaults to the layout's.
        val: validation patients, a fraction of the cases or a count.
        test: test patients, a fraction or a count.
        num_folds: with k folds, every non-test case goes to ``training`` with a ``fold`` index in ``0..k-1`` and
            ``validation`` stays empty (choose the validation fold at training time).
        seed: seed of the patient shuffle (same seed, same split).
        skip_incomplete: list cases missing a modality or the mask under ``skipped`` instead of failing.

    Returns:
        the datalist: ``layout``, ``modalities``, ``label_convention``, ``training``, ``validation``, ``test``,
        ``skipped``.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        DatalistError: empty folder, unknown or undetectable layout, ambiguous detection, incomplete cases (all of
            them listed), too few cases for the split, bad arguments.

    Example::

        datalist = make_datalist("/data/BraTS2021_Training_Data", modalities=["flair"], val=0.1, test=0.2)
        write_datalist(datalist, "datalist.json")
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist (or is not a folder).")
    if layout != "auto" and layout not in LAYOUTS:
        raise DatalistError(f"unknown layout {layout!r}; expected 'auto' or one of {LAYOUTS}.")
    if layout == "custom" and not patterns:
        raise DatalistError("layout='custom' needs patterns, e.g. {'flair': 'Flair*.nii.gz', 'label': 'seg*.nii.gz'}.")
    if not any(root.iterdir()):
        raise DatalistError(f"dataset folder {root} is empty.")

    nifti_files = sorted(root.rglob("*.nii.gz"))
    if layout == "auto":
        layout, scanned = _detect_layout(root, nifti_files)
    else:
        scanned = _scan(root, layout, patterns, nifti_files)
    if layout == "custom":
        available = [name for name in patterns if name != "label"]
    else:
        available = list(MODALITIES[layout])
    modalities = list(available if modalities is None else modalities)
    unknown = [m for m in modalities if m not in available]
    if unknown or not modalities:
        raise DatalistError(f"modalities {unknown or modalities} not in layout {layout!r}, which has {available}.")
    modalities = [m for m in available if m in modalities]
    convention = label_convention or LABEL_CONVENTIONS.get(layout, "binary")

    required = _required_files(layout, modalities)
    complete, incomplete = [], []
    for case in sorted(scanned.values(), key=lambda c: c.case_id):
        missing = [name for name in required if name not in case.files]
        (incomplete if missing else complete).append((case, missing))
    skipped = [
        {"case_id": case.case_id, "reason": "missing " + ", ".join("mask" if m == "label" else m for m in missing)}
        for case, missing in incomplete
    ]
    if skipped and not skip_incomplete:
        lines = "\n".join(f"  {entry['case_id']}: {entry['reason']}" for entry in skipped)
        raise DatalistError(
            f"{len(skipped)} incomplete case(s) in {root} (layout {layout}):\n{lines}\n"
            "Add the missing files, or pass skip_incomplete=True (--skip-incomplete) to leave these cases out."
        )
    cases = [case for case, _ in complete]
    if not cases:
        raise DatalistError(f"no complete {layout} case found in {root}.")
    duplicates = sorted({c.case_id for c in cases if sum(o.case_id == c.case_id for o in cases) > 1})
    if duplicates:
        raise DatalistError(f"case id(s) {duplicates} appear in several folders of {root}; keep one copy of each.")
    if layout == "hecktor2021":
        _attach_bounding_boxes(root, cases)

    items = {case.case_id: _item(case, layout, modalities, convention) for case in cases}
    case_ids = sorted(items)
    random.Random(seed).shuffle(case_ids)
    datalist = {
        "layout": layout,
        "modalities": list(BRAIN_MODALITIES) if layout == "msd" else modalities,
        "label_convention": convention,
        "training": [],
        "validation": [],
        "test": [],
        "skipped": skipped,
    }
    if num_folds is not None:
        if num_folds < 2:
            raise DatalistError(f"num_folds must be >= 2, got {num_folds}.")
        _, num_test = _split_sizes(len(case_ids), 0, test)
        pool = case_ids[num_test:]
        if len(pool) < num_folds:
            raise DatalistError(f"{len(pool)} non-test case(s) cannot fill {num_folds} folds.")
        datalist["test"] = [items[c] for c in sorted(case_ids[:num_test])]
        datalist["training"] = [dict(items[c], fold=index % num_folds) for index, c in enumerate(pool)]
        return datalist
    num_val, num_test = _split_sizes(len(case_ids), val, test)
    datalist["test"] = [items[c] for c in sorted(case_ids[:num_test])]
    datalist["validation"] = [items[c] for c in sorted(case_ids[num_test : num_test + num_val])]
    datalist["training"] = [items[c] for c in sorted(case_ids[num_test + num_val :])]
    return datalist


def _item(case: _Case, layout: str, modalities: list[str], convention: str) -> dict:
    image = [str(case.files["image"].resolve())] if layout == "msd" else [str(case.files[m].resolve()) for m in modalities]
    item = {
        "image": image,
        "label": str(case.files["label"].resolve()),
        "case_id": case.case_id,
        "modalities": list(BRAIN_MODALITIES) if layout == "msd" else list(modalities),
        "label_convention": convention,
    }
    item.update(case.extra)
    return item


def _detect_layout(root: Path, nifti_files: list[Path]) -> tuple[str, dict]:
    candidates = []
    for layout in MODALITIES:
        scanned = _scan(root, layout, None, nifti_files)
        required = _required_files(layout, MODALITIES[layout])
        num_complete = sum(all(name in case.files for name in required) for case in scanned.values())
        if scanned:
            candidates.append((num_complete, len(scanned), layout, scanned))
    if not candidates:
        raise DatalistError(
            f"no known dataset layout found in {root} (tried {', '.join(MODALITIES)}); for another layout use "
            "layout='custom' with one glob pattern per modality and one for the label."
        )
    candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
    if len(candidates) > 1 and candidates[0][:2] == candidates[1][:2]:
        raise DatalistError(
            f"{root} matches several layouts ({candidates[0][2]} and {candidates[1][2]}); pass layout= explicitly."
        )
    return candidates[0][2], candidates[0][3]


def write_datalist(datalist: dict, path: str | os.PathLike) -> Path:
    """
    Write a datalist as JSON atomically (a crash never leaves a truncated file behind).

    Args:
        datalist: from :func:`make_datalist`.
        path: destination; its folder is created.

    Returns:
        the path written.

    Example::

        write_datalist(make_datalist("/data/hecktor"), "hecktor_datalist.json")
    """
    path = Path(path)
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(datalist, indent=2))
    return path


def _parse_patterns(values: Sequence[str]) -> dict[str, str]:
    patterns = {}
    for value in values:
        name, separator, pattern = value.partition("=")
        if not separator or not name or not pattern:
            raise DatalistError(f"--pattern expects NAME=GLOB, got {value!r}.")
        patterns[name] = pattern
    return patterns


def _fraction_or_count(value: str) -> float | int:
    number = float(value)
    return int(number) if number >= 1 else number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scan a BraTS / HECKTOR / MSD / custom folder into a MONAI datalist.")
    parser.add_argument("root", help="dataset folder (the download's top folder)")
    parser.add_argument("--output", required=True, help="datalist JSON to write")
    parser.add_argument("--layout", default="auto", choices=("auto", *LAYOUTS))
    parser.add_argument("--modalities", nargs="+", help="subset of modalities, e.g. flair t1ce or pt")
    parser.add_argument("--pattern", action="append", default=[], help="custom layout: NAME=GLOB, one per modality and label=GLOB")
    parser.add_argument("--label-convention", help="raw label meaning, e.g. brats2015 or binary (custom layout)")
    parser.add_argument("--val", type=_fraction_or_count, default=0.2, help="validation fraction (<1) or count (>=1)")
    parser.add_argument("--test", type=_fraction_or_count, default=0.2, help="test fraction (<1) or count (>=1)")
    parser.add_argument("--folds", type=int, help="k folds over the non-test cases")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-incomplete", action="store_true", help="leave out cases missing a file, and list them")
    args = parser.parse_args(argv)
    try:
        datalist = make_datalist(
            args.root,
            layout=args.layout,
            modalities=args.modalities,
            patterns=_parse_patterns(args.pattern) or None,
            label_convention=args.label_convention,
            val=args.val,
            test=args.test,
            num_folds=args.folds,
            seed=args.seed,
            skip_incomplete=args.skip_incomplete,
        )
    except (DatalistError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    write_datalist(datalist, args.output)
    for entry in datalist["skipped"]:
        print(f"skipped {entry['case_id']}: {entry['reason']}")
    counts = ", ".join(f"{len(datalist[s])} {s}" for s in ("training", "validation", "test"))
    print(f"{datalist['layout']} datalist with {counts} case(s) written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
