"""Running a data-scarce sweep through a bundle's own stage configs, resumable, with every result kept."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from monai.bundle import ConfigParser
from monai.data import load_decathlon_datalist

from dhvae_monai.data.datalists import make_datalist, write_datalist
from dhvae_monai.data.prepare import prepare_datalist
from dhvae_monai.experiments.report import write_report
from dhvae_monai.experiments.sweep import REFERENCE_BASELINE, ExperimentError, ExperimentRun, ExperimentSweep, split_patients
from dhvae_monai.pipeline import run_stage
from dhvae_monai.utils.atomic import atomic_path

__all__ = ["pooled_cases", "run_experiment"]

logger = logging.getLogger(__name__)

SPLITS = ("training", "validation", "test")


def pooled_cases(datalists: Sequence[str | os.PathLike]) -> tuple[list[dict], dict[str, Any]]:
    """
    Every case of one or more datalist files (all their splits), to be re-split by the sweep.

    Args:
        datalists: MONAI datalist JSON files whose items have a ``case_id`` (as written by
            ``python -m dhvae_monai.data.datalists``); relative paths are resolved against each file's folder.

    Returns:
        the items, and the datalists' shared top-level settings (``modalities``, ``layout``, ...).

    Raises:
        FileNotFoundError: a datalist does not exist.
        ExperimentError: an item without ``case_id``, or no case at all.

    Example::

        cases, settings = pooled_cases(["brats2015.json", "brats2018.json"])
    """
    cases: list[dict] = []
    settings: dict[str, Any] = {}
    for path in datalists:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"datalist {path} not found.")
        content = json.loads(path.read_text())
        settings.update({key: value for key, value in content.items() if key not in (*SPLITS, "skipped")})
        for split in SPLITS:
            if not content.get(split):
                continue
            for item in load_decathlon_datalist(str(path), is_segmentation=True, data_list_key=split):
                if "case_id" not in item:
                    raise ExperimentError(
                        f"{path}: a {split!r} item has no 'case_id' ({item}); write the datalist with "
                        "`python -m dhvae_monai.data.datalists`, or add one per patient."
                    )
                cases.append(item)
    if not cases:
        raise ExperimentError(f"no case in {[str(path) for path in datalists]}.")
    return cases, settings


def run_experiment(
    bundle_root: str | os.PathLike,
    output_dir: str | os.PathLike,
    sweep: ExperimentSweep,
    dataset_dir: str | os.PathLike | None = None,
    datalists: Sequence[str | os.PathLike] = (),
    overrides: Mapping[str, Any] | None = None,
) -> list[dict]:
    """
    Run every stage of a sweep (see :class:`ExperimentSweep`) through the bundle's stage configs and write the
    report: ``runs.csv`` (one row per segmenter), ``quality.csv`` (one row per generator), ``results.md`` and
    ``dice_vs_synthetic.png``.

    The patients come from ``datalists``, else from ``dataset_dir``, else from the built-in phantom data (created in
    ``output_dir`` with as many patients as the sweep needs, and the stages read ``configs/phantom.yaml``). Each
    (R, seed) has its folder ``R<R>_seed<seed>/`` with its ``datalist.json``, ``generators/<name>/`` (checkpoints,
    ``models/generator.pt``, ``synthetic/``, ``quality/``), ``segmentation/``, ``evaluation/`` and ``models/``.
    Preprocessed volumes are cached once in ``output_dir/cache`` for every stage.

    Re-running the same command resumes: a stage whose product exists is skipped, and an interrupted training
    resumes from its last checkpoint. Each stage records its settings in ``stages/``; a stage started with other
    settings is an error, so results of different settings are never mixed. Adding seeds, R or M values to a
    finished sweep runs only the new stages (a larger ``max(num_synthetic)`` changes the sample stage: use a new
    ``output_dir``).

    Args:
        bundle_root: ``bundles/dhvae_brats`` or ``bundles/dhvae_hecktor``.
        output_dir: where everything is written.
        sweep: the runs.
        dataset_dir: a dataset folder in a layout ``make_datalist`` recognises.
        datalists: datalist files whose cases are pooled (see :func:`pooled_cases`); take precedence.
        overrides: config overrides for every stage (after ``sweep.stage_settings``).

    Returns:
        the rows of ``runs.csv``.

    Raises:
        ExperimentError: too few patients, or a stage started earlier with other settings.
        PipelineError: a stage failed (the message names the stage and the cause).

    Example::

        sweep = ExperimentSweep.from_bundle("bundles/dhvae_brats", phantom=True)
        rows = run_experiment("bundles/dhvae_brats", "runs/experiment", sweep)
    """
    bundle_root, output_dir = Path(bundle_root), Path(output_dir)
    phantom = not datalists and dataset_dir in (None, "")
    extra_configs = ["phantom.yaml"] if phantom else []
    settings = {"cache_dir": str(output_dir / "cache"), **sweep.stage_settings, **dict(overrides or {})}
    cases, datalist_settings = _cases(bundle_root, output_dir, sweep, dataset_dir, datalists, extra_configs, settings)
    by_id = {case["case_id"]: case for case in cases}
    started, runs = time.monotonic(), sweep.runs()
    logger.info(
        "experiment: %d patients, %d segmenter runs (R %s, M %s, seeds %s, methods %s) in %s",
        len(by_id), len(runs), list(sweep.training_patients), list(sweep.num_synthetic), list(sweep.seeds),
        list(sweep.methods), output_dir,
    )
    stage = _StageRunner(bundle_root, extra_configs)
    rows, quality_rows = [], []
    for index, run in enumerate(runs):
        group_dir = output_dir / run.group
        split = split_patients(list(by_id), sweep, run.training_patients, run.seed)
        datalist = group_dir / "datalist.json"
        if not datalist.is_file():
            write_datalist({**datalist_settings, **{name: [by_id[c] for c in ids] for name, ids in split.items()}}, datalist)
        group = {**settings, "datalist": str(datalist), "seed": run.seed}
        if run.method in sweep.generators:
            generator_dir = _generator(stage, group_dir, group, run.method, sweep)
            segmentation = {
                "num_synthetic": run.num_synthetic,
                "synthetic_datalist": str(generator_dir / "synthetic" / "synthetic_datalist.json"),
                "generator_weights": str(generator_dir / "models" / "generator.pt"),
            }
        else:
            segmentation = {"num_synthetic": 0, **sweep.baselines[run.method]}
        summary = _segmenter(stage, group_dir, group, run, segmentation)
        rows.append(_row(run, summary, split, stage.seconds(group_dir, f"train_segmentation_{run.name}")))
        if run.method == REFERENCE_BASELINE:
            quality_rows += _quality(stage, bundle_root, group_dir, group, run, sweep)
        done = index + 1
        elapsed = time.monotonic() - started
        logger.info(
            "run %d/%d done: %s, R = %d, seed %d: 3D Dice %s, 2D soft Dice %s (%.0f min so far, about %.0f min left)",
            done, len(runs), run.name, run.training_patients, run.seed, _percent(rows[-1]["dice_3d"]),
            _percent(rows[-1]["soft_dice_2d"]), elapsed / 60, elapsed / done * (len(runs) - done) / 60,
        )
    write_report(output_dir, rows, quality_rows, sweep, minutes=(time.monotonic() - started) / 60)
    return rows


class _StageRunner:
    """Runs a stage unless its product exists, recording its settings (``stages/<label>.json``) before it starts."""

    def __init__(self, bundle_root: Path, extra_configs: Sequence[str]) -> None:
        self.bundle_root, self.extra_configs = bundle_root, list(extra_configs)

    def __call__(self, stage: str, label: str, record_dir: Path, product: Path, settings: Mapping[str, Any]) -> None:
        record = record_dir / "stages" / f"{label}.json"
        wanted = json.loads(json.dumps(dict(settings), default=str, sort_keys=True))
        if record.is_file():
            recorded = json.loads(record.read_text())["settings"]
            if recorded != wanted:
                changed = sorted(key for key in set(recorded) | set(wanted) if recorded.get(key) != wanted.get(key))
                raise ExperimentError(
                    f"{record_dir}: stage {label} was started with other settings ({', '.join(changed)} differ; "
                    f"recorded in {record}). Use a new output_dir, or delete {record_dir} to redo it."
                )
            if product.is_file():
                return
        _write_json(record, {"settings": wanted, "seconds": None})
        started = time.monotonic()
        run_stage(self.bundle_root, stage, self.extra_configs, **settings)
        if not product.is_file():
            raise ExperimentError(f"stage {label} finished without writing {product}.")
        _write_json(record, {"settings": wanted, "seconds": round(time.monotonic() - started, 1)})

    @staticmethod
    def seconds(record_dir: Path, label: str) -> float | None:
        """How long a stage took when it ran (None if it is unknown)."""
        return json.loads((record_dir / "stages" / f"{label}.json").read_text()).get("seconds")


def _cases(
    bundle_root: Path,
    output_dir: Path,
    sweep: ExperimentSweep,
    dataset_dir: str | os.PathLike | None,
    datalists: Sequence[str | os.PathLike],
    extra_configs: Sequence[str],
    settings: Mapping[str, Any],
) -> tuple[list[dict], dict[str, Any]]:
    if datalists:
        return pooled_cases(datalists)
    config = ConfigParser()
    config.read_config([str(bundle_root / "configs" / name) for name in ("common.yaml", *extra_configs)])
    for key, value in settings.items():
        config[key] = value
    if dataset_dir in (None, ""):
        path = prepare_datalist(
            None, output_dir, phantom_layout=config["phantom_layout"], num_phantom_cases=sweep.num_patients_needed,
            val_fraction=0, test_fraction=0, seed=sweep.split_seed,
        )
        return pooled_cases([path])
    datalist = make_datalist(dataset_dir, layout=config["layout"], val_fraction=0, test_fraction=0)
    return pooled_cases([write_datalist(datalist, output_dir / "patients.json")])


def _generator(stage: _StageRunner, group_dir: Path, group: Mapping[str, Any], name: str, sweep: ExperimentSweep) -> Path:
    """Train generator ``name`` on the group's patients and sample its pairs (once); its folder."""
    generator_dir = group_dir / "generators" / name
    settings = {**group, **sweep.generators[name], "output_dir": str(generator_dir), "models_dir": str(generator_dir / "models")}
    stage("train_generator", f"train_generator_{name}", group_dir, generator_dir / "models" / "generator.pt", settings)
    stage(
        "sample", f"sample_{name}", group_dir, generator_dir / "synthetic" / "synthetic_datalist.json",
        {**settings, "num_synthetic": sweep.max_synthetic},
    )
    return generator_dir


def _segmenter(
    stage: _StageRunner, group_dir: Path, group: Mapping[str, Any], run: ExperimentRun, segmentation: Mapping[str, Any]
) -> dict:
    """Train and evaluate the segmenter of ``run``; its evaluation summary."""
    settings = {
        **group,
        **segmentation,
        "output_dir": str(group_dir),
        "models_dir": str(group_dir / "models"),
        "run_name": run.name,
        "segmenter_weights": str(group_dir / "models" / f"{run.name}.pt"),
    }
    stage("train_segmentation", f"train_segmentation_{run.name}", group_dir, Path(settings["segmenter_weights"]), settings)
    summary = group_dir / "evaluation" / run.name / "summary.json"
    stage("evaluate", f"evaluate_{run.name}", group_dir, summary, settings)
    return json.loads(summary.read_text())


def _quality(
    stage: _StageRunner, bundle_root: Path, group_dir: Path, group: Mapping[str, Any], reference: ExperimentRun,
    sweep: ExperimentSweep,
) -> list[dict]:
    """Sample quality of each generator of the group, in the feature space of the group's reference segmenter."""
    if not (bundle_root / "configs" / "quality.yaml").is_file() or sweep.max_synthetic == 0:
        return []
    rows = []
    for name in sweep.generators:
        generator_dir = _generator(stage, group_dir, group, name, sweep)
        quality_dir = generator_dir / "quality"
        settings = {
            **group,
            **sweep.generators[name],
            "output_dir": str(generator_dir),
            "models_dir": str(generator_dir / "models"),
            "segmenter_weights": str(group_dir / "models" / f"{reference.name}.pt"),
            "quality_dir": str(quality_dir),
        }
        stage("quality", f"quality_{name}", group_dir, quality_dir / "quality.json", settings)
        report = json.loads((quality_dir / "quality.json").read_text())
        rows.append({"generator": name, "training_patients": reference.training_patients, "seed": reference.seed, **_flat(report)})
    return rows


def _row(run: ExperimentRun, summary: Mapping, split: Mapping[str, list[str]], seconds: float | None) -> dict:
    metrics = summary["metrics"]
    return {
        "method": run.method,
        "training_patients": run.training_patients,
        "num_synthetic": run.num_synthetic,
        "seed": run.seed,
        "test_volumes": summary["num_cases"],
        "dice_3d": metrics.get("test_mean_dice"),
        "soft_dice_2d": metrics.get("test_soft_dice_2d"),
        "hd95": metrics.get("test_hd95"),
        "segmenter_seconds": seconds,
        "training_cases": ";".join(split["training"]),
        "test_cases": ";".join(split["test"]),
    }


def _flat(report: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in report.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}_"))
        elif not isinstance(value, (list, tuple)):
            flat[f"{prefix}{key}"] = value
    return flat


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _write_json(path: Path, content: Mapping[str, Any]) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(content, indent=2) + "\n")
