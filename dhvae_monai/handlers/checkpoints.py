"""Checkpoint handlers: atomic saving, resuming from the latest checkpoint, and exporting final weights."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Mapping

import torch
from ignite.engine import Engine, Events
from ignite.handlers import DiskSaver
from monai.handlers import CheckpointLoader, CheckpointSaver

from dhvae_monai.utils.atomic import atomic_path

__all__ = ["AtomicCheckpointSaver", "LatestCheckpointLoader", "WeightsExporter", "latest_checkpoint"]

_EPOCH = re.compile(r"_epoch=(\d+)\.pt$")


def latest_checkpoint(checkpoint_dir: str | os.PathLike, prefix: str = "checkpoint") -> Path | None:
    """
    The ``<prefix>_epoch=<N>.pt`` file with the largest ``N`` in ``checkpoint_dir`` (as written by
    :class:`AtomicCheckpointSaver` / MONAI's ``CheckpointSaver``), or None when there is none.

    Args:
        checkpoint_dir: folder to look in (may not exist yet).
        prefix: file prefix of the checkpoints.

    Returns:
        the path of the latest checkpoint, or None.

    Example::

        path = latest_checkpoint("runs/generator/checkpoints")
    """
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return None
    epochs = {}
    for path in folder.glob(f"{prefix}_epoch=*.pt"):
        match = _EPOCH.search(path.name)
        if match:
            epochs[int(match.group(1))] = path
    return epochs[max(epochs)] if epochs else None


class AtomicCheckpointSaver(CheckpointSaver):
    """
    MONAI's ``CheckpointSaver`` writing each file atomically (to a temporary file, then renamed), so an interrupted
    save never leaves a truncated checkpoint behind for the next resume. Arguments are those of ``CheckpointSaver``.

    Interval checkpoints beyond ``n_saved`` are deleted only *after* the new one is complete (ignite deletes the
    oldest first, so with ``n_saved=1`` an interruption would leave no checkpoint at all), and the deletion also
    covers checkpoints left by an earlier run that this one resumed.

    Example::

        AtomicCheckpointSaver(save_dir="runs/checkpoints", save_dict={"network": net}, save_interval=1, n_saved=1)
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # MONAI turns ignite's atomic saving off only for file permissions, which ignite now sets group/other-readable
        for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint):
            if checkpoint is not None:
                checkpoint.save_handler._atomic = True
        if self._interval_checkpoint is not None:
            keep = self._interval_checkpoint.n_saved
            self._interval_checkpoint.n_saved = None
            self._interval_checkpoint.save_handler = _PruningAtomicSaver(self.save_dir, keep)


class _PruningAtomicSaver(DiskSaver):
    """Atomic ``DiskSaver`` that, after each complete save, keeps only the ``keep`` latest ``*_epoch=N.pt`` files."""

    def __init__(self, dirname: str | os.PathLike, keep: int | None) -> None:
        super().__init__(dirname=str(dirname), require_empty=False, atomic=True)
        self.keep = keep

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        super().__call__(checkpoint, filename, metadata)
        match = _EPOCH.search(filename)
        if self.keep is None or match is None:
            return
        prefix = filename[: match.start()]
        saved = sorted(
            (int(m.group(1)), path)
            for path in Path(self.dirname).glob(f"{prefix}_epoch=*.pt")
            if (m := _EPOCH.search(path.name)) and path.name[: m.start()] == prefix
        )
        for _, path in saved[: -self.keep]:
            path.unlink(missing_ok=True)


class LatestCheckpointLoader:
    """
    Resume training: load the latest checkpoint of ``checkpoint_dir`` (see :func:`latest_checkpoint`) into
    ``load_dict`` when the engine starts, through MONAI's ``CheckpointLoader`` (``weights_only`` loading).
    Without a checkpoint the engine starts from scratch, so the same command both starts and resumes a run.

    Args:
        checkpoint_dir: folder of the checkpoints written by :class:`AtomicCheckpointSaver`.
        load_dict: objects to restore, with the keys used when saving (include the trainer to restore its epoch).
        prefix: file prefix of the checkpoints.
        map_location: ``torch.load``'s map_location.
        name: logger name.

    Example::

        LatestCheckpointLoader("runs/checkpoints", {"network": net, "optimizer": opt, "trainer": trainer}).attach(trainer)
    """

    def __init__(
        self,
        checkpoint_dir: str | os.PathLike,
        load_dict: Mapping,
        prefix: str = "checkpoint",
        map_location: str | torch.device | Mapping | None = None,
        name: str | None = None,
    ) -> None:
        self.checkpoint_dir = checkpoint_dir
        self.load_dict = load_dict
        self.prefix = prefix
        self.map_location = map_location
        self.logger = logging.getLogger(name or __name__)

    def attach(self, engine: Engine) -> None:
        """Attach a ``CheckpointLoader`` of the latest checkpoint, if there is one, to ``engine``."""
        path = latest_checkpoint(self.checkpoint_dir, self.prefix)
        if path is None:
            self.logger.info("no checkpoint in %s: training from scratch", self.checkpoint_dir)
            return
        self.logger.info("resuming from %s", path)
        CheckpointLoader(load_path=str(path), load_dict=dict(self.load_dict), map_location=self.map_location).attach(
            engine
        )


class WeightsExporter:
    """
    When the engine completes, write ``network``'s ``state_dict`` atomically to ``path`` (e.g. the bundle's
    ``models/model.pt``), the file later stages, ``ckpt_export`` and MONAI Label load. An interrupted run writes
    nothing, so the file always holds a finished training.

    Args:
        network: the network whose weights to export (unwrapped from DistributedDataParallel).
        path: destination file.
        name: logger name.

    Example::

        WeightsExporter(network=net, path="models/model.pt").attach(trainer)
    """

    def __init__(self, network: torch.nn.Module, path: str | os.PathLike, name: str | None = None) -> None:
        self.network = network
        self.path = Path(path)
        self.logger = logging.getLogger(name or __name__)

    def attach(self, engine: Engine) -> None:
        """Export on ``Events.COMPLETED``."""
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        with atomic_path(self.path) as temporary:
            torch.save(self.network.state_dict(), temporary)
        self.logger.info("weights written to %s", self.path)
