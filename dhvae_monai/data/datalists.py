"""
Dataset folders as downloaded from the challenges → MONAI datalists with patient-level splits.

Command line::

    python -m dhvae_monai.data.datalists ROOT --output datalist.json [--layout auto|brats2021|...|custom]
        [--modalities flair t1ce] [--pattern flair='Flair_*.nii.gz' t1ce='T1c_*.nii.gz'
        --label-pattern 'OTMultiClass.nii.gz' --label-convention brats2015]
        [--val 0.2|N] [--test 0.2|N] [--folds K] [--seed S] [--skip-incomplete]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from monai.data import partition_dataset

from dhvae_monai.data.layouts import (
    LAYOUT_FILES,
    LAYOUT_LABEL_CONVENTIONS,
    LAYOUT_MODALITIES,
    LAYOUTS,
    CaseFiles,
    DatalistError,
    detect_layout,
    find_cases,
)
from dhvae_monai.transforms.labels import LABEL_CONVENTIONS
from dhvae_monai.utils.atomic import atomic_path

__all__ = ["DatalistError", "make_datalist", "write_datalist", "main"]

SPLITS = ("training", "validation", "test")
SLOT_NAMES = {"label": "mask", "image": "4D image"}  # how the item keys read in messages


def _check_arguments(
    root: Path,
    layout: str,
    patterns: Mapping[str, str] | None,
    label_convention: str | None,
) -> None:
    if not root.exists():
        raise FileNotFoundError(f"dataset folder {root} does not exist.")
    if not root.is_dir():
        raise DatalistError(f"{root} is a file; expected the dataset folder.")
    if not any(root.iterdir()):
        raise DatalistError(f"dataset folder {root} is empty.")
    if layout != "auto" and layout not in LAYOUTS:
        raise DatalistError(f"unknown layout {layout!r}; expected 'auto' or one of {', '.join(LAYOUTS)}.")
    if layout != "custom" and patterns:
        raise DatalistError(f"patterns only apply to layout='custom', not {layout!r}.")
    if label_convention is not None and label_convention not in LABEL_CONVENTIONS:
        raise DatalistError(
            f"unknown label_convention {label_convention!r}; expected one of {', '.join(LABEL_CONVENTIONS)}."
        )


def _select_modalities(layout: str, available: Sequence[str], modalities: Sequence[str] | None) -> list[str]:
    if modalities is None:
        return list(available)
    unknown = [name for name in modalities if name not in available]
    if unknown or not modalities:
        raise DatalistError(
            f"modalities {list(modalities)} are not a subset of the {layout} layout's {list(available)}."
        )
    return [name for name in available if name in modalities]  # canonical order, whatever the order asked


def _describe_missing(case: CaseFiles, missing: Sequence[str]) -> str:
    return "missing " + ", ".join(f"{SLOT_NAMES.get(slot, slot)} ({case.expected.get(slot, '?')})" for slot in missing)


def _complete_cases(
    root: Path, layout: str, cases: Sequence[CaseFiles], required: Sequence[str], skip_incomplete: bool
) -> tuple[list[CaseFiles], list[dict[str, str]]]:
    """The cases with every required file, and the others as ``skipped`` entries (or an error naming them all)."""
    ambiguous = [
        f"{case.case_id} has {len(paths)} {SLOT_NAMES.get(slot, slot)} files ({', '.join(map(str, paths))})"
        for case in cases
        for slot, paths in case.duplicates.items()
        if slot in required
    ]
    folders: dict[str, list[str]] = {}
    for case in cases:
        folders.setdefault(case.case_id, []).append(str(next(iter(case.files.values())).parent))
    ambiguous += [
        f"case id {case_id} names {len(found)} folders ({', '.join(found)})"
        for case_id, found in folders.items()
        if len(found) > 1
    ]
    if ambiguous:
        raise DatalistError(
            f"ambiguous {layout} cases in {root}: {'; '.join(ambiguous)}. Keep one copy of each case, or point at "
            "one copy."
        )
    complete, skipped = [], []
    for case in cases:
        missing = case.missing(required)
        if missing:
            skipped.append({"case_id": case.case_id, "reason": _describe_missing(case, missing)})
        else:
            complete.append(case)
    if skipped and not skip_incomplete:
        listing = "; ".join(f"{entry['case_id']} {entry['reason']}" for entry in skipped)
        raise DatalistError(
            f"{len(skipped)} incomplete {layout} case(s) in {root}: {listing}. Add the missing files, or pass "
            "skip_incomplete=True (--skip-incomplete) to leave these cases out."
        )
    if not complete:
        raise DatalistError(f"no complete {layout} case in {root} ({len(skipped)} incomplete case(s) skipped).")
    return complete, skipped


def _split_size(num_cases: int, fraction: float, count: int | None, name: str) -> int:
    if count is not None:
        if count < 0:
            raise DatalistError(f"num_{name} must be >= 0, got {count}.")
        return count
    if not 0.0 <= fraction < 1.0:
        raise DatalistError(f"{name}_fraction must be in [0, 1), got {fraction}; give a number of cases as num_{name}.")
    # a positive fraction of a small dataset still gets one case (rounding half up, as MONAI's partition_dataset)
    return max(1, int(fraction * num_cases + 0.5)) if fraction > 0 else 0


def _item(case: CaseFiles, layout: str, modalities: Sequence[str], label_convention: str) -> dict[str, Any]:
    if layout == "msd":  # one 4D file; the transforms pick channels by name
        image, channels = [os.path.abspath(case.files["image"])], list(LAYOUT_MODALITIES["msd"])
    else:
        image, channels = [os.path.abspath(case.files[name]) for name in modalities], list(modalities)
    return {
        "image": image,
        "label": os.path.abspath(case.files["label"]),
        "case_id": case.case_id,
        "modalities": channels,
        "label_convention": label_convention,
        **case.extra,
    }


def make_datalist(
    root: str | os.PathLike,
    layout: str = "auto",
    modalities: Sequence[str] | None = None,
    patterns: Mapping[str, str] | None = None,
    label_convention: str | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    num_val: int | None = None,
    num_test: int | None = None,
    num_folds: int | None = None,
    seed: int = 0,
    skip_incomplete: bool = False,
) -> dict[str, Any]:
    """
    Scan a dataset folder, recognise its layout and build a MONAI datalist with patient-level splits.

    Layouts (searched recursively, so point at the download's top folder; ``.nii`` works as well as ``.nii.gz``):

    - ``brats2021`` (BraTS 2018–2021): ``<case>_{flair,t1,t1ce,t2,seg}.nii.gz``
    - ``brats2023`` (BraTS 2023 and later): ``<case>-{t2f,t1n,t1c,t2w,seg}.nii.gz``
    - ``msd`` (Decathlon Task01_BrainTumour): ``dataset.json`` listing 4D ``imagesTr/`` and ``labelsTr/`` files
    - ``hecktor2021`` (HECKTOR 2020–2021): ``<case>_{pt,ct}.nii.gz`` and ``<case>_gtvt.nii.gz`` (2021) or
      ``<case>_ct_gtvt.nii.gz`` (2020), flat or one folder per case; the ``*bbox*.csv`` boxes become each item's
      ``bounding_box_mm`` (x1, x2, y1, y2, z1, z2 in mm)
    - ``hecktor2022`` (HECKTOR 2022 and later): ``imagesTr/<case>__{PT,CT}.nii.gz``, ``labelsTr/<case>.nii.gz``
    - ``custom``: ``patterns``, one glob per modality and one for the mask, relative to each case folder, whose name
      is the case id; must be asked for.

    Except for ``custom``, case ids come from the file names, not the folders. Each item is ``{"image": [absolute
    path of each modality, canonical order], "label", "case_id", "modalities", "label_convention"}``; an ``msd`` item's
    ``image`` is its one 4D file and its ``modalities`` name the four channels, the subset to use being the
    datalist's top-level ``modalities``. Canonical order: ``flair, t1, t1ce, t2`` (BraTS 2023's t2f, t1n, t1c, t2w
    map onto them) and ``pt, ct``. Cases are shuffled with ``seed`` and cut into test, validation and training
    patients (so a patient's volumes never reach two splits); items within a split are sorted by case id.

    Args:
        root: dataset folder.
        layout: ``"auto"`` or one of :data:`~dhvae_monai.data.layouts.LAYOUTS`; ``auto`` takes the only known layout
            with a complete case, and never ``custom``.
        modalities: modalities to list (default all of the layout's, or of ``patterns``); kept in canonical order.
            Only these (and the mask) must exist for a case to be complete.
        patterns: ``custom``: modality name -> glob relative to a case folder (channel order), and ``"label"`` -> glob
            of the mask, e.g. ``{"flair": "Flair_*.nii.gz", "label": "OTMultiClass.nii.gz"}``.
        label_convention: meaning of the raw label values, one of
            :data:`~dhvae_monai.transforms.labels.LABEL_CONVENTIONS`; default the layout's (``binary`` for ``custom``).
        val_fraction: fraction of the patients for validation (at least one when positive).
        test_fraction: fraction of the patients for test (at least one when positive).
        num_val: number of validation patients, instead of ``val_fraction``.
        num_test: number of test patients, instead of ``test_fraction``.
        num_folds: k >= 2: every non-test patient goes to ``training`` with a ``fold`` in ``0..k-1`` (validation
            is a fold, chosen at training time) and ``validation`` stays empty; ``val_fraction`` is then unused.
        seed: seed of the patient shuffle; the test patients for a seed are the same with or without folds.
        skip_incomplete: put cases missing a file under ``skipped`` instead of failing.

    Returns:
        ``{"layout", "modalities", "label_convention", "training", "validation", "test", "skipped"}``, where
        ``skipped`` lists ``{"case_id", "reason"}`` of the incomplete cases left out.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        DatalistError: (a ``ValueError``) an empty folder, an unknown, undetectable or ambiguous layout, incomplete
            cases (all of them, with the missing files) unless ``skip_incomplete``, two files or folders for one case,
            too few cases for the split, or invalid arguments.

    Example::

        datalist = make_datalist("/data/BraTS2021_Training_Data", modalities=["flair"], num_test=100, seed=0)
        write_datalist(datalist, "brats_flair.json")
    """
    root = Path(root)
    _check_arguments(root, layout, patterns, label_convention)
    if num_folds is not None and num_val is not None:
        raise DatalistError(
            "num_val and num_folds exclude each other: with folds, each fold is the validation set once."
        )
    if layout == "auto":
        layout, cases = detect_layout(root, modalities)
    else:
        cases = find_cases(root, layout, patterns)
    if not cases:
        expected = f"the patterns {dict(patterns)}" if layout == "custom" else LAYOUT_FILES[layout]
        raise DatalistError(f"no {layout} case found in {root}: nothing matches {expected}.")
    available = [name for name in patterns if name != "label"] if layout == "custom" else LAYOUT_MODALITIES[layout]
    modalities = _select_modalities(layout, available, modalities)
    required = ["image", "label"] if layout == "msd" else [*modalities, "label"]
    complete, skipped = _complete_cases(root, layout, cases, required, skip_incomplete)

    convention = label_convention or LAYOUT_LABEL_CONVENTIONS.get(layout, "binary")
    items = {case.case_id: _item(case, layout, modalities, convention) for case in complete}
    case_ids = sorted(items)
    num_cases = len(case_ids)
    num_test = _split_size(num_cases, test_fraction, num_test, "test")
    num_val = 0 if num_folds is not None else _split_size(num_cases, val_fraction, num_val, "val")
    num_training = num_cases - num_test - num_val
    if num_folds is not None and (num_folds < 2 or num_training < num_folds):
        raise DatalistError(
            f"{num_folds} folds need num_folds >= 2 and at least that many non-test cases; {root} has {num_cases} "
            f"complete case(s), {num_test} of them for test."
        )
    if num_training < 1:
        raise DatalistError(
            f"{root} has {num_cases} complete {layout} case(s): too few for {num_val} validation + {num_test} test "
            "case(s) and at least one training case; lower the validation / test share or add cases."
        )
    # one seeded shuffle, cut in this order, so the test patients do not depend on the validation share or the folds
    test_ids, val_ids, training_ids = partition_dataset(
        case_ids, ratios=[num_test, num_val, num_training], shuffle=True, seed=seed
    )
    datalist: dict[str, Any] = {
        "layout": layout,
        "modalities": modalities,
        "label_convention": convention,
        "training": [items[case_id] for case_id in sorted(training_ids)],
        "validation": [items[case_id] for case_id in sorted(val_ids)],
        "test": [items[case_id] for case_id in sorted(test_ids)],
        "skipped": skipped,
    }
    if num_folds is not None:
        folds = partition_dataset(training_ids, num_partitions=num_folds)  # training_ids are already shuffled
        fold_of = {case_id: fold for fold, ids in enumerate(folds) for case_id in ids}
        datalist["training"] = [dict(item, fold=fold_of[item["case_id"]]) for item in datalist["training"]]
    return datalist


def write_datalist(datalist: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """
    Write a datalist as JSON, atomically: a reader never sees a half-written file, nor a crash a truncated one.

    Args:
        datalist: from :func:`make_datalist`.
        path: destination; its folder is created.

    Returns:
        the path written.

    Example::

        write_datalist(make_datalist("/data/hecktor2022"), "hecktor_datalist.json")
    """
    path = Path(path)
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(datalist, indent=2) + "\n")
    return path


def _pattern(text: str) -> tuple[str, str]:
    name, separator, pattern = text.partition("=")
    if not separator or not name or not pattern:
        raise argparse.ArgumentTypeError(f"expected MODALITY=GLOB, got {text!r}")
    return name, pattern


def _fraction_or_count(text: str) -> tuple[str, float | int]:
    """``"3"`` is a number of cases, ``"0.2"`` a fraction."""
    try:
        return "count", int(text)
    except ValueError:
        pass
    try:
        return "fraction", float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a fraction such as 0.2 or a number of cases such as 3, got {text!r}"
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """
    Command line of :func:`make_datalist`; prints the skipped cases and a summary, or one error line (exit code 1).

    Example::

        python -m dhvae_monai.data.datalists /data/hecktor2021_train --output hecktor.json --modalities pt --folds 5
    """
    parser = argparse.ArgumentParser(
        prog="python -m dhvae_monai.data.datalists",
        description="Scan a BraTS / MSD / HECKTOR (or custom) dataset folder into a MONAI datalist JSON with "
        "patient-level training / validation / test splits.",
    )
    parser.add_argument("root", help="dataset folder (the download's top folder; searched recursively)")
    parser.add_argument("--output", required=True, help="datalist JSON to write")
    parser.add_argument("--layout", default="auto", choices=("auto", *LAYOUTS))
    parser.add_argument("--modalities", nargs="+", help="subset of the layout's modalities, e.g. flair t1ce, or pt")
    parser.add_argument(
        "--pattern", type=_pattern, nargs="+", action="extend", default=[], metavar="MODALITY=GLOB",
        help="custom layout: a glob per modality, relative to a case folder (channel order)",
    )
    parser.add_argument("--label-pattern", metavar="GLOB", help="custom layout: glob of the mask in a case folder")
    parser.add_argument("--label-convention", choices=tuple(LABEL_CONVENTIONS), help="meaning of the raw label values")
    default_share = ("fraction", 0.2)
    parser.add_argument("--val", type=_fraction_or_count, default=default_share, help="validation fraction or count")
    parser.add_argument("--test", type=_fraction_or_count, default=default_share, help="test fraction or count")
    parser.add_argument("--folds", type=int, help="k folds over the non-test patients (instead of --val)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the patient shuffle")
    parser.add_argument("--skip-incomplete", action="store_true", help="leave out (and list) cases missing a file")
    args = parser.parse_args(argv)
    patterns = dict(args.pattern)
    if args.label_pattern:
        patterns["label"] = args.label_pattern
    (val_kind, val), (test_kind, test) = args.val, args.test
    try:
        datalist = make_datalist(
            args.root,
            layout=args.layout,
            modalities=args.modalities,
            patterns=patterns or None,
            label_convention=args.label_convention,
            val_fraction=val if val_kind == "fraction" else 0.0,
            num_val=val if val_kind == "count" else None,
            test_fraction=test if test_kind == "fraction" else 0.0,
            num_test=test if test_kind == "count" else None,
            num_folds=args.folds,
            seed=args.seed,
            skip_incomplete=args.skip_incomplete,
        )
        write_datalist(datalist, args.output)
    except (DatalistError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for entry in datalist["skipped"]:
        print(f"skipped {entry['case_id']}: {entry['reason']}")
    counts = ", ".join(f"{len(datalist[split])} {split}" for split in SPLITS)
    modalities = " ".join(datalist["modalities"])
    print(f"{datalist['layout']} datalist ({modalities}) with {counts} case(s) written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
