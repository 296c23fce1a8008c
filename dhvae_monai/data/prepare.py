"""The first step of every bundle stage: a dataset folder (or the built-in phantoms) turned into a datalist file."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Sequence

from monai.data import load_decathlon_datalist

from dhvae_monai.data.datalists import make_datalist, write_datalist
from dhvae_monai.data.layouts import DatalistError
from dhvae_monai.data.phantoms import make_phantom_dataset

__all__ = ["inference_items", "load_split", "prepare_datalist"]

logger = logging.getLogger(__name__)

SPLITS = ("training", "validation", "test")


def prepare_datalist(
    dataset_dir: str | os.PathLike | None,
    output_dir: str | os.PathLike,
    layout: str = "auto",
    phantom_layout: str = "brats2021",
    num_phantom_cases: int = 8,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    num_val: int | None = None,
    num_test: int | None = None,
    seed: int = 0,
    skip_incomplete: bool = False,
) -> str:
    """
    Write ``<output_dir>/datalist.json`` with patient-level training / validation / test splits of ``dataset_dir``.

    Without ``dataset_dir`` the built-in phantom dataset is used: ``num_phantom_cases`` phantom patients in the
    ``phantom_layout`` layout, created once in ``<output_dir>/phantom_<layout>``. It is built in a temporary folder
    and renamed, so an interrupted creation is redone rather than half used, and concurrent processes (the ranks of
    a distributed run) do not clash. The splits depend only on the case list and ``seed``, so every stage of a run
    sees the same patients in the same split.

    Args:
        dataset_dir: a BraTS / HECKTOR / MSD / custom folder (see :func:`~dhvae_monai.data.make_datalist`), or
            None / ``""`` for the phantom data.
        output_dir: the run's output folder.
        layout: layout of ``dataset_dir``; ``"auto"`` detects it.
        phantom_layout: layout of the phantom data.
        num_phantom_cases: phantom patients to create.
        val_fraction: share of patients for validation (when ``num_val`` is None).
        test_fraction: share of patients for testing (when ``num_test`` is None).
        num_val: validation patients.
        num_test: test patients.
        seed: seed of the split (and of the phantoms).
        skip_incomplete: leave out cases with missing files instead of failing.

    Returns:
        the datalist path, as a string (for MONAI's ``load_decathlon_datalist``).

    Raises:
        FileNotFoundError: ``dataset_dir`` does not exist or is not a folder.
        DatalistError: no usable case in ``dataset_dir``, or too few for the splits.

    Example::

        datalist = prepare_datalist(None, "runs/brats")  # phantom data
        datalist = prepare_datalist("/data/BraTS2021_Training_Data", "runs/brats", num_test=30)
    """
    output_dir = Path(output_dir)
    if dataset_dir in (None, ""):
        dataset_dir = output_dir / f"phantom_{phantom_layout}"
        layout = phantom_layout
        if not dataset_dir.is_dir():
            # one folder per process: the ranks of a distributed run all get here; the first rename wins
            partial = dataset_dir.with_name(f"{dataset_dir.name}.partial-{os.getpid()}")
            logger.info("creating %d phantom %s cases in %s", num_phantom_cases, phantom_layout, dataset_dir)
            try:
                make_phantom_dataset(partial, layout=phantom_layout, num_cases=num_phantom_cases, seed=seed)
                os.replace(partial, dataset_dir)
            except OSError:
                if not dataset_dir.is_dir():
                    raise
            finally:
                shutil.rmtree(partial, ignore_errors=True)
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.exists():
        raise FileNotFoundError(f"dataset_dir {dataset_dir} does not exist: set --dataset_dir to your dataset folder.")
    if not dataset_dir.is_dir():
        raise FileNotFoundError(f"dataset_dir {dataset_dir} is a file, not a folder: set --dataset_dir to the folder.")
    datalist = make_datalist(
        dataset_dir,
        layout=layout,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        num_val=num_val,
        num_test=num_test,
        seed=seed,
        skip_incomplete=skip_incomplete,
    )
    path = write_datalist(datalist, output_dir / "datalist.json")
    logger.info(
        "datalist %s: %s",
        path,
        ", ".join(f"{len(datalist.get(split, []))} {split}" for split in SPLITS),
    )
    return str(path)


def load_split(datalist: str | os.PathLike, split: str, keys: Sequence[str] = ("image", "label")) -> list[dict]:
    """
    The items of one split of a datalist file, with paths made absolute; an empty split is an error.

    Args:
        datalist: the datalist JSON (MONAI's Decathlon format).
        split: ``"training"``, ``"validation"`` or ``"test"``.
        keys: keys holding paths, checked to be present in every item.

    Returns:
        the split's items.

    Raises:
        DatalistError: the split is missing or empty, or an item lacks one of ``keys``.

    Example::

        test_cases = load_split("runs/brats/datalist.json", "test")
    """
    content = json.loads(Path(datalist).read_text())
    if split not in content:
        raise DatalistError(f"{datalist}: no {split!r} split; it has {sorted(content)}.")
    if not content[split]:
        # MONAI's reader fails on an empty split with an IndexError that names neither the file nor the split
        raise DatalistError(
            f"{datalist}: the {split!r} split is empty. Add patients to the dataset or change the split sizes "
            "(val_fraction / test_fraction, num_val / num_test)."
        )
    items = load_decathlon_datalist(str(datalist), is_segmentation=True, data_list_key=split)
    for item in items:
        missing = [key for key in keys if key not in item]
        if missing:
            raise DatalistError(f"{datalist}: a {split!r} item lacks {missing}: {item}.")
    return items


def inference_items(inputs: str | os.PathLike, modalities: Sequence[str], pattern: str = "*.nii*") -> list[dict]:
    """
    The cases to segment, as items for the bundles' inference preprocessing.

    Args:
        inputs: a volume file (one case), a folder (every file matching ``pattern`` is one case, one file per case:
            single-modality models), or a datalist JSON (its ``"test"`` items, else those of every other split;
            multi-modality cases list one file per modality with their names under ``"modalities"``).
        modalities: the model's modalities, given to items that do not name theirs.
        pattern: glob of the volume files in a folder.

    Returns:
        ``[{"image": path or paths, "modalities": [...], ...}, ...]``.

    Raises:
        FileNotFoundError: ``inputs`` does not exist, a folder holds no file matching ``pattern``, or a datalist
            lists no case.

    Example::

        items = inference_items("/data/new_scans", modalities=["flair"], pattern="*_flair.nii.gz")
    """
    inputs = Path(inputs)
    if not inputs.exists():
        raise FileNotFoundError(f"inference input {inputs} does not exist: set --input to a volume, folder or datalist.")
    if inputs.is_dir():
        files = sorted(inputs.glob(pattern))
        if not files:
            raise FileNotFoundError(f"no file matching {pattern!r} in {inputs}: set --input_pattern.")
        items = [{"image": str(path)} for path in files]
    elif inputs.suffix == ".json":
        content = json.loads(inputs.read_text())
        splits = ["test"] if content.get("test") else [split for split in SPLITS if content.get(split)]
        items = [
            dict(item)
            for split in splits
            for item in load_decathlon_datalist(str(inputs), is_segmentation=False, data_list_key=split)
        ]
        if not items:
            raise FileNotFoundError(f"{inputs} lists no case under {list(SPLITS)}.")
    else:
        items = [{"image": str(inputs)}]
    for item in items:
        item.setdefault("modalities", list(modalities))
        item.pop("label", None)  # inference never reads a mask, even where the datalist has one
    return items
