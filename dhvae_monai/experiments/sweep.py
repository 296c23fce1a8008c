"""The data-scarce experiment's definition: the runs of a sweep and the patients each of them sees."""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

__all__ = ["ExperimentError", "ExperimentRun", "ExperimentSweep", "split_patients"]

#: the baseline every generator's curve starts from: the segmenter trained on the real slices only
REFERENCE_BASELINE = "no_augmentation"


class ExperimentError(ValueError):
    """A sweep that cannot run as asked; the message names the setting or file to change."""


@dataclass(frozen=True)
class ExperimentRun:
    """
    One segmenter training of a sweep, scored on the test patients.

    Attributes:
        method: a baseline (``no_augmentation``, ``traditional``) or the generator whose pairs are added.
        training_patients: number of real training patients (R).
        num_synthetic: synthetic pairs added to the real slices (M; 0 for baselines).
        seed: the repeat; it picks the training patients and seeds every stage.
    """

    method: str
    training_patients: int
    num_synthetic: int
    seed: int

    @property
    def group(self) -> str:
        """The folder of the runs sharing real patients and seed (and the generators trained on them)."""
        return f"R{self.training_patients:03d}_seed{self.seed}"

    @property
    def name(self) -> str:
        """The segmenter's run name inside its group."""
        return self.method if self.num_synthetic == 0 else f"{self.method}_M{self.num_synthetic:05d}"


@dataclass(frozen=True)
class ExperimentSweep:
    """
    The data-scarce experiment (method.md §9): for each number R of real training patients and each seed, the
    generators are trained on those R patients only, each samples ``max(num_synthetic)`` pairs once, and the 2D
    segmenter is trained on the real slices plus the first M pairs for every M, and on the baselines (M = 0); every
    segmenter is scored on the same held-out test patients.

    Args:
        training_patients: values of R.
        num_synthetic: values of M; 0 stands for the ``no_augmentation`` baseline, which every generator's curve
            starts from.
        seeds: repeats; seed s takes its training patients from its own shuffle of the non-test patients, nested
            across R (the first R of that shuffle), and seeds the stages.
        num_test: held-out test patients, the same for every run.
        num_val: validation patients of each repeat (generator validation, sample quality, segmenter logs).
        baselines: name -> segmentation-stage overrides, trained with M = 0 (e.g. ``traditional``:
            ``{"augmentation": "traditional"}``); must include ``no_augmentation``.
        generators: name -> generator-stage overrides (e.g. ``vae``: ``{"leapfrog_steps": 0, "regulariser_weight": 0}``).
        split_seed: seed of the shuffle that picks the test patients.
        stage_settings: overrides for every stage (e.g. smaller networks for a CPU).

    Example::

        sweep = ExperimentSweep.from_bundle("bundles/dhvae_brats")
        sweep = sweep.restricted(training_patients=[10], seeds=[0, 1])
        print(len(sweep.runs()), "segmenter trainings")
    """

    training_patients: tuple[int, ...]
    num_synthetic: tuple[int, ...]
    seeds: tuple[int, ...]
    num_test: int
    num_val: int
    baselines: Mapping[str, Mapping[str, Any]]
    generators: Mapping[str, Mapping[str, Any]]
    split_seed: int = 0
    stage_settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("training_patients", "num_synthetic", "seeds"):
            values = getattr(self, name)
            if not values:
                raise ExperimentError(f"the sweep's {name} is empty.")
            object.__setattr__(self, name, tuple(sorted({int(value) for value in values})))
        if min(self.training_patients) < 1:
            raise ExperimentError(f"training_patients must be >= 1, got {list(self.training_patients)}.")
        if min(self.num_synthetic) < 0:
            raise ExperimentError(f"num_synthetic must be >= 0, got {list(self.num_synthetic)}.")
        if self.num_test < 1 or self.num_val < 1:
            raise ExperimentError(f"num_test and num_val must be >= 1, got {self.num_test} and {self.num_val}.")
        if REFERENCE_BASELINE not in self.baselines:
            raise ExperimentError(f"the sweep's baselines must include {REFERENCE_BASELINE!r}, got {list(self.baselines)}.")
        clash = set(self.baselines) & set(self.generators)
        if clash:
            raise ExperimentError(f"{sorted(clash)} named both a baseline and a generator.")

    @classmethod
    def from_config(cls, *paths: str | os.PathLike) -> ExperimentSweep:
        """
        A sweep from YAML files (later files override earlier keys; ``stage_settings`` merge key by key).

        Raises:
            FileNotFoundError: a file does not exist.
            ExperimentError: an unknown or missing key.
        """
        content: dict[str, Any] = {}
        for path in paths:
            path = Path(path)
            if not path.is_file():
                raise FileNotFoundError(f"experiment config {path} not found.")
            loaded = yaml.safe_load(path.read_text()) or {}
            unknown = set(loaded) - set(cls.__dataclass_fields__)
            if unknown:
                raise ExperimentError(f"{path}: unknown key(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}.")
            settings = {**content.get("stage_settings", {}), **loaded.get("stage_settings", {})}
            content.update(loaded, stage_settings=settings)
        required = [spec.name for spec in fields(cls) if spec.default is MISSING and spec.default_factory is MISSING]
        missing = [name for name in required if name not in content]
        if missing:
            raise ExperimentError(f"experiment config {[str(p) for p in paths]} lacks {missing}.")
        content["baselines"] = {name: dict(value or {}) for name, value in content["baselines"].items()}
        content["generators"] = {name: dict(value or {}) for name, value in content["generators"].items()}
        return cls(**content)

    @classmethod
    def from_bundle(
        cls, bundle_root: str | os.PathLike, phantom: bool = False, extra_configs: Sequence[str | os.PathLike] = ()
    ) -> ExperimentSweep:
        """
        The sweep a bundle declares: ``configs/experiment.yaml`` (the paper's protocol), then
        ``configs/experiment_phantom.yaml`` for the built-in phantom data (``phantom=True``), then ``extra_configs``.
        """
        configs = Path(bundle_root) / "configs"
        files = [configs / "experiment.yaml"] + ([configs / "experiment_phantom.yaml"] if phantom else [])
        return cls.from_config(*files, *extra_configs)

    def restricted(
        self,
        training_patients: Sequence[int] | None = None,
        num_synthetic: Sequence[int] | None = None,
        seeds: Sequence[int] | None = None,
        methods: Sequence[str] | None = None,
        num_test: int | None = None,
        num_val: int | None = None,
    ) -> ExperimentSweep:
        """The same sweep with some of its values replaced (None keeps a value); ``methods`` selects a subset."""
        changes: dict[str, Any] = {
            key: value
            for key, value in dict(
                training_patients=training_patients, num_synthetic=num_synthetic, seeds=seeds,
                num_test=num_test, num_val=num_val,
            ).items()
            if value is not None
        }
        if methods is not None:
            unknown = sorted(set(methods) - set(self.methods))
            if unknown:
                raise ExperimentError(f"unknown method(s) {unknown}; the sweep has {list(self.methods)}.")
            # the reference baseline stays: every generator's curve starts from it
            changes["baselines"] = {k: v for k, v in self.baselines.items() if k in methods or k == REFERENCE_BASELINE}
            changes["generators"] = {k: v for k, v in self.generators.items() if k in methods}
        return replace(self, **changes)

    @property
    def methods(self) -> tuple[str, ...]:
        """Baselines, then generators, in declaration order."""
        return (*self.baselines, *self.generators)

    @property
    def max_synthetic(self) -> int:
        """Pairs each generator samples (the first M of them go into the run with M pairs)."""
        return max(self.num_synthetic)

    @property
    def num_patients_needed(self) -> int:
        """Patients the sweep needs: test, validation and the largest training set."""
        return self.num_test + self.num_val + max(self.training_patients)

    def runs(self) -> list[ExperimentRun]:
        """Every segmenter training of the sweep, grouped by (R, seed): baselines first, then generators by M."""
        runs = []
        for training_patients in self.training_patients:
            for seed in self.seeds:
                runs += [ExperimentRun(name, training_patients, 0, seed) for name in self.baselines]
                runs += [
                    ExperimentRun(name, training_patients, count, seed)
                    for name in self.generators
                    for count in self.num_synthetic
                    if count > 0
                ]
        return runs


def split_patients(case_ids: Sequence[str], sweep: ExperimentSweep, training_patients: int, seed: int) -> dict[str, list[str]]:
    """
    The patients of one repeat: ``test`` (fixed by ``sweep.split_seed``), then ``validation`` and ``training`` taken in
    order from seed ``seed``'s shuffle of the others, so a smaller training set is part of a larger one.

    Args:
        case_ids: every patient of the dataset.
        sweep: the sweep (``num_test``, ``num_val``, ``split_seed``).
        training_patients: R.
        seed: the repeat.

    Returns:
        ``{"training": [...], "validation": [...], "test": [...]}``, each sorted.

    Raises:
        ExperimentError: fewer patients than the sweep needs, or a patient listed twice.

    Example::

        split = split_patients([f"case{i}" for i in range(40)], sweep, training_patients=10, seed=2)
    """
    ordered = sorted(case_ids)
    if len(set(ordered)) != len(ordered):
        duplicates = sorted({case for case in ordered if ordered.count(case) > 1})
        raise ExperimentError(f"patients listed more than once: {duplicates}.")
    needed = sweep.num_test + sweep.num_val + training_patients
    if len(ordered) < needed:
        raise ExperimentError(
            f"{len(ordered)} patients, but R = {training_patients} needs {needed} ({sweep.num_test} test + "
            f"{sweep.num_val} validation + {training_patients} training); lower training_patients or num_test."
        )
    shuffled = [ordered[i] for i in np.random.default_rng(sweep.split_seed).permutation(len(ordered))]
    test, rest = shuffled[: sweep.num_test], sorted(shuffled[sweep.num_test :])
    rest = [rest[i] for i in np.random.default_rng(seed).permutation(len(rest))]
    return {
        "training": sorted(rest[sweep.num_val : sweep.num_val + training_patients]),
        "validation": sorted(rest[: sweep.num_val]),
        "test": sorted(test),
    }
