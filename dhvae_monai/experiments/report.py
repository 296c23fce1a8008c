"""The report of a data-scarce sweep: every run as CSV, mean ± std tables, and Dice against the number of pairs."""

from __future__ import annotations

import csv
import json
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from dhvae_monai.experiments.sweep import REFERENCE_BASELINE, ExperimentSweep
from dhvae_monai.utils.atomic import atomic_path

__all__ = ["METHOD_TITLES", "QUALITY_SCORES", "SCORES", "format_results_tables", "plot_dice_curves", "summarise_runs", "write_csv", "write_report"]

METHOD_TITLES = {
    "no_augmentation": "no augmentation",
    "traditional": "traditional augmentation",
    "matched_iterations": "no augmentation, matched iterations",
    "vae": "VAE",
    "hvae": "HVAE",
    "dhvae": "dHVAE",
}
#: the scores summarised per configuration: column of runs.csv -> (title, scale)
SCORES = {"dice_3d": ("3D Dice (%)", 100.0), "soft_dice_2d": ("2D soft Dice (%)", 100.0), "hd95": ("HD95 (voxels)", 1.0)}
#: the sample-quality scores tabulated per generator: column of quality.csv (the quality stage's quality.json,
#: flattened) -> title; the reference columns (real against real) sit beside the synthetic ones
QUALITY_SCORES = {
    "reconstruction_psnr": "recon. PSNR (dB)",
    "reconstruction_ssim": "recon. SSIM",
    "reconstruction_mask_dice": "recon. mask Dice",
    "acceptance_acceptance_rate": "draws kept",
    "acceptance_border_fraction": "kept with border tumour",
    "diversity_ms_ssim_synthetic": "MS-SSIM between samples",
    "diversity_ms_ssim_real": "MS-SSIM between real slices",
    "feature_distance_synthetic_vs_real_mmd": "MMD synthetic-real",
    "feature_distance_real_vs_real_mmd": "MMD real-real",
    "feature_distance_synthetic_vs_real_fid": "FID synthetic-real",
    "feature_distance_real_vs_real_fid": "FID real-real",
}


def summarise_runs(rows: Iterable[Mapping[str, Any]], keys: Sequence[str] = ("method", "training_patients", "num_synthetic"), scores: Sequence[str] = tuple(SCORES)) -> list[dict]:
    """
    Mean, sample standard deviation (ddof = 1) and count of each score over the seeds of each configuration.

    Args:
        rows: rows of ``runs.csv`` (or of ``quality.csv``).
        keys: the columns that name a configuration.
        scores: the columns to summarise; missing values (None, NaN) are left out of their score's statistics.

    Returns:
        one dict per configuration, in first-seen order: the ``keys``, ``runs``, and ``<score>_mean``,
        ``<score>_std`` (None for fewer than two values), ``<score>_n`` and ``<score>_values`` (the runs' values, in
        order).

    Example::

        summary = summarise_runs(rows)  # [{"method": "dhvae", "training_patients": 10, "num_synthetic": 500, ...}]
    """
    groups: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[key] for key in keys)].append(row)
    summary = []
    for configuration, members in groups.items():
        entry: dict[str, Any] = dict(zip(keys, configuration), runs=len(members))
        for score in scores:
            values = [float(row[score]) for row in members if _is_number(row.get(score))]
            entry[f"{score}_mean"] = float(np.mean(values)) if values else None
            entry[f"{score}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
            entry[f"{score}_n"] = len(values)
            entry[f"{score}_values"] = values
        summary.append(entry)
    return summary


def format_results_tables(summary: Sequence[Mapping[str, Any]], sweep: ExperimentSweep) -> str:
    """
    Markdown tables of :func:`summarise_runs` output, one per number of training patients: a row per method and
    number of synthetic pairs, each score as mean ± std over the seeds, and the 3D Dice of every run (with few seeds
    a mean hides whether one run failed or all did a little worse).

    Example::

        print(format_results_tables(summarise_runs(rows), sweep))
    """
    order = {name: index for index, name in enumerate(sweep.methods)}
    blocks = []
    for patients in sweep.training_patients:
        entries = sorted(
            (entry for entry in summary if entry["training_patients"] == patients),
            key=lambda entry: (order.get(entry["method"], len(order)), entry["num_synthetic"]),
        )
        if not entries:
            continue
        lines = [
            f"**{patients} real training patient{'s' if patients > 1 else ''}**",
            "",
            "| segmenter trained with | synthetic pairs | runs | " + " | ".join(title for title, _ in SCORES.values())
            + " | 3D Dice of each run (%) |",
            "|---|---|---|" + "---|" * (len(SCORES) + 1),
        ]
        for entry in entries:
            cells = [_mean_std(entry, score, scale) for score, (_, scale) in SCORES.items()]
            cells.append(", ".join(f"{100 * value:.0f}" for value in entry.get("dice_3d_values", [])) or "n/a")
            lines.append(
                f"| {METHOD_TITLES.get(entry['method'], entry['method'])} | {entry['num_synthetic']} | {entry['runs']} | "
                + " | ".join(cells) + " |"
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def plot_dice_curves(summary: Sequence[Mapping[str, Any]], sweep: ExperimentSweep, path: str | os.PathLike) -> Path:
    """
    The paper's figure: test Dice against the number of synthetic pairs, one line per generator (starting at the
    no-augmentation baseline, M = 0), the other baselines as horizontal lines; one row of panels per number of
    training patients, one column per score (3D Dice, 2D soft Dice); error bars are ± one standard deviation.

    Args:
        summary: from :func:`summarise_runs`.
        sweep: the sweep (its methods and values give the panels and lines).
        path: the PNG to write (atomically).

    Returns:
        the path written.

    Example::

        plot_dice_curves(summarise_runs(rows), sweep, "runs/experiment/dice_vs_synthetic.png")
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    lookup = {(e["method"], e["training_patients"], e["num_synthetic"]): e for e in summary}
    scores = ("dice_3d", "soft_dice_2d")
    figure, axes = plt.subplots(
        len(sweep.training_patients), len(scores), figsize=(5.5 * len(scores), 3.8 * len(sweep.training_patients)),
        squeeze=False,
    )
    for row, patients in enumerate(sweep.training_patients):
        reference = lookup.get((REFERENCE_BASELINE, patients, 0))
        for column, score in enumerate(scores):
            axis = axes[row][column]
            for name in sweep.generators:
                points = [(0, reference)] + [(m, lookup.get((name, patients, m))) for m in sweep.num_synthetic if m > 0]
                points = [(m, e) for m, e in points if e is not None and e[f"{score}_mean"] is not None]
                if points:
                    axis.errorbar(
                        [m for m, _ in points], [100 * e[f"{score}_mean"] for _, e in points],
                        yerr=[100 * (e[f"{score}_std"] or 0.0) for _, e in points],
                        marker="o", capsize=3, label=METHOD_TITLES.get(name, name),
                    )
            for style, name in zip(("--", ":", "-."), sweep.baselines):
                entry = lookup.get((name, patients, 0))
                if entry is not None and entry[f"{score}_mean"] is not None:
                    axis.axhline(100 * entry[f"{score}_mean"], linestyle=style, color="grey", label=METHOD_TITLES.get(name, name))
            axis.set_title(f"R = {patients} training patients: {SCORES[score][0]}")
            axis.set_xlabel("synthetic pairs added (M)")
            axis.set_ylabel(SCORES[score][0])
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8)
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110)
    plt.close(figure)
    return path


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """
    Rows as a CSV file (columns in first-seen order), written atomically.

    Example::

        write_csv([{"method": "dhvae", "dice_3d": 0.71}], "runs/experiment/runs.csv")
    """
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    path = Path(path)
    with atomic_path(path) as temporary:
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    return path


def write_report(
    output_dir: str | os.PathLike,
    rows: Sequence[Mapping[str, Any]],
    quality_rows: Sequence[Mapping[str, Any]],
    sweep: ExperimentSweep,
    minutes: float,
) -> Path:
    """
    Write ``runs.csv``, ``quality.csv`` (when there are quality rows), ``summary.json``, ``results.md`` and
    ``dice_vs_synthetic.png`` into ``output_dir``.

    Returns:
        the path of ``results.md``.

    Example::

        write_report("runs/experiment", rows, quality_rows, sweep, minutes=27.5)
    """
    output_dir = Path(output_dir)
    summary = summarise_runs(rows)
    write_csv(rows, output_dir / "runs.csv")
    sections = [
        "# Data-scarce experiment",
        "",
        f"R (real training patients) {list(sweep.training_patients)}, M (synthetic pairs) {list(sweep.num_synthetic)}, "
        f"seeds {list(sweep.seeds)}, {sweep.num_test} test patients; {len(rows)} segmenter runs; this invocation took "
        f"{minutes:.1f} min. Scores: mean ± sample standard deviation over the seeds, on the test patients' whole "
        "volumes (3D Dice, HD95) and on their tumour slices (the paper's 2D soft Dice).",
        "",
        format_results_tables(summary, sweep),
        "",
        "![Dice against the number of synthetic pairs](dice_vs_synthetic.png)",
    ]
    quality_summary: list[dict] = []
    if quality_rows:
        write_csv(quality_rows, output_dir / "quality.csv")
        scores = [key for key in QUALITY_SCORES if any(key in row for row in quality_rows)]
        quality_summary = summarise_runs(quality_rows, keys=("generator", "training_patients"), scores=scores)
        sections += [
            "",
            "## Sample quality",
            "",
            "Each generator scored by the quality stage on its repeat's validation patient(s), in the feature space of "
            "that repeat's no-augmentation segmenter (all columns in `quality.csv`). FID needs more slices than "
            "features and is n/a otherwise.",
            "",
            _quality_table(quality_summary, scores),
        ]
    plot_dice_curves(summary, sweep, output_dir / "dice_vs_synthetic.png")
    with atomic_path(output_dir / "summary.json") as temporary:
        temporary.write_text(json.dumps({"minutes": round(minutes, 1), "runs": summary, "quality": quality_summary}, indent=2) + "\n")
    with atomic_path(output_dir / "results.md") as temporary:
        temporary.write_text("\n".join(sections) + "\n")
    return output_dir / "results.md"


def _quality_table(summary: Sequence[Mapping[str, Any]], scores: Sequence[str]) -> str:
    lines = [
        "| generator | R | runs | " + " | ".join(QUALITY_SCORES[score] for score in scores) + " |",
        "|---|---|---|" + "---|" * len(scores),
    ]
    for entry in summary:
        cells = [_mean_std(entry, score, 1.0, digits=3, style="g") for score in scores]
        lines.append(
            f"| {METHOD_TITLES.get(entry['generator'], entry['generator'])} | {entry['training_patients']} | "
            f"{entry['runs']} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def _mean_std(entry: Mapping[str, Any], score: str, scale: float, digits: int = 1, style: str = "f") -> str:
    mean, std = entry[f"{score}_mean"], entry[f"{score}_std"]
    if mean is None:
        return "n/a"
    return f"{scale * mean:.{digits}{style}}" + ("" if std is None else f" ± {scale * std:.{digits}{style}}")


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
