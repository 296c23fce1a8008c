from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine, Events
from monai.engines import SupervisedTrainer
from monai.handlers import CheckpointSaver

from dhvae_monai.handlers import AtomicCheckpointSaver, LatestCheckpointLoader, WeightsExporter, latest_checkpoint
from dhvae_monai.networks import load_weights


def _loader():
    generator = torch.Generator().manual_seed(0)
    return [{"image": torch.rand(2, 4, generator=generator), "label": torch.rand(2, 1, generator=generator)} for _ in range(2)]


def _trainer(max_epochs: int, seed: int):
    torch.manual_seed(seed)
    net = torch.nn.Linear(4, 1)
    optimizer = torch.optim.Adam(net.parameters(), 1e-2)
    trainer = SupervisedTrainer(
        device="cpu", max_epochs=max_epochs, train_data_loader=_loader(), network=net, optimizer=optimizer,
        loss_function=torch.nn.MSELoss(),
    )
    return trainer, net, optimizer


def _epoch_files(folder):
    return sorted(path.name for path in folder.glob("checkpoint_epoch=*.pt"))


def test_latest_checkpoint_picks_the_highest_epoch_numerically(tmp_path):
    assert latest_checkpoint(tmp_path / "missing") is None
    assert latest_checkpoint(tmp_path) is None
    for name in ("checkpoint_epoch=2.pt", "checkpoint_epoch=9.pt", "checkpoint_epoch=10.pt", "other_epoch=99.pt",
                 "checkpoint_epoch=abc.pt", "checkpoint_final_iteration=500.pt", "checkpoint_epoch=50.pt.tmp"):
        (tmp_path / name).write_bytes(b"")
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint_epoch=10.pt"  # 10 > 9, not "10" < "9"
    assert latest_checkpoint(tmp_path, prefix="other") == tmp_path / "other_epoch=99.pt"
    assert latest_checkpoint(tmp_path, prefix="network") is None


def test_atomic_saver_turns_on_atomic_saving_for_every_checkpoint_kind(tmp_path):
    net = torch.nn.Linear(2, 1)
    saver = AtomicCheckpointSaver(
        save_dir=str(tmp_path), save_dict={"network": net}, save_final=True, save_key_metric=True,
        key_metric_name="dice", save_interval=1,
    )
    handlers = [saver._final_checkpoint, saver._key_metric_checkpoint, saver._interval_checkpoint]
    assert all(checkpoint.save_handler._atomic is True for checkpoint in handlers)
    # MONAI's own saver writes non-atomically: the override is what makes the difference
    plain = CheckpointSaver(save_dir=str(tmp_path), save_dict={"network": net}, save_interval=1)
    assert plain._interval_checkpoint.save_handler._atomic is False


def _interrupt_second_save(monkeypatch, saver_class, tmp_path, n_saved):
    """Train 2 epochs with a checkpoint per epoch; the save of epoch 2 dies after writing a few bytes."""
    trainer, net, optimizer = _trainer(max_epochs=2, seed=0)
    saver_class(
        save_dir=str(tmp_path), save_dict={"network": net, "optimizer": optimizer, "trainer": trainer},
        save_interval=1, n_saved=n_saved,
    ).attach(trainer)
    epoch_1_weights = {}
    trainer.add_event_handler(
        Events.EPOCH_COMPLETED(once=1),
        lambda engine: epoch_1_weights.update({k: v.clone() for k, v in net.state_dict().items()}),
    )
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        if trainer.state.epoch == 2:
            if hasattr(f, "write"):
                f.write(b"PK\x03\x04 half a checkpoint")
                f.flush()
            else:
                with open(f, "wb") as handle:
                    handle.write(b"PK\x03\x04 half a checkpoint")
            raise OSError("No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError, match="No space left"):
        trainer.run()
    monkeypatch.setattr(torch, "save", real_save)
    return epoch_1_weights


def test_interrupted_save_leaves_no_partial_file_and_keeps_the_previous_checkpoint(monkeypatch, tmp_path):
    epoch_1_weights = _interrupt_second_save(monkeypatch, AtomicCheckpointSaver, tmp_path, n_saved=None)
    assert _epoch_files(tmp_path) == ["checkpoint_epoch=1.pt"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint_epoch=1.pt"]  # no temporary debris
    checkpoint = torch.load(tmp_path / "checkpoint_epoch=1.pt", weights_only=True)
    assert checkpoint["trainer"]["iteration"] == 2  # end of epoch 1 (2 iterations per epoch)
    for name, value in epoch_1_weights.items():
        torch.testing.assert_close(checkpoint["network"][name], value)
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint_epoch=1.pt"


def test_interrupted_save_keeps_the_previous_checkpoint_with_n_saved_1(monkeypatch, tmp_path):
    # the bundles' setting (n_saved: 1): an interrupted save must still leave a checkpoint to resume from
    _interrupt_second_save(monkeypatch, AtomicCheckpointSaver, tmp_path, n_saved=1)
    assert not any(path.name.startswith("tmp") for path in tmp_path.iterdir())
    assert _epoch_files(tmp_path) == ["checkpoint_epoch=1.pt"], (
        "the only checkpoint was deleted before the new one was written: the next run restarts from scratch"
    )


def test_plain_monai_saver_would_leave_a_truncated_checkpoint(monkeypatch, tmp_path):
    # control for the two tests above: the failure injection does produce a partial file without atomic saving
    _interrupt_second_save(monkeypatch, CheckpointSaver, tmp_path, n_saved=None)
    assert "checkpoint_epoch=2.pt" in _epoch_files(tmp_path)
    assert (tmp_path / "checkpoint_epoch=2.pt").read_bytes().endswith(b"half a checkpoint")


def test_latest_checkpoint_loader_resumes_for_the_remaining_epochs(tmp_path):
    trainer, net, optimizer = _trainer(max_epochs=2, seed=0)
    objects = {"network": net, "optimizer": optimizer, "trainer": trainer}
    AtomicCheckpointSaver(save_dir=str(tmp_path), save_dict=objects, save_interval=1, n_saved=1).attach(trainer)
    trainer.run()
    assert _epoch_files(tmp_path) == ["checkpoint_epoch=2.pt"]
    saved = {k: v.clone() for k, v in net.state_dict().items()}
    saved_step = optimizer.state_dict()["state"][0]["step"].clone()

    resumed, new_net, new_optimizer = _trainer(max_epochs=3, seed=1)
    assert not torch.equal(new_net.weight, saved["weight"])  # really a different start
    objects = {"network": new_net, "optimizer": new_optimizer, "trainer": resumed}
    LatestCheckpointLoader(tmp_path, objects).attach(resumed)
    AtomicCheckpointSaver(save_dir=str(tmp_path), save_dict=objects, save_interval=1, n_saved=1).attach(resumed)
    at_start, epochs_run = {}, []
    resumed.add_event_handler(
        Events.STARTED, lambda engine: at_start.update({k: v.clone() for k, v in new_net.state_dict().items()})
    )
    resumed.add_event_handler(Events.EPOCH_STARTED, lambda engine: epochs_run.append(engine.state.epoch))
    resumed.run()

    assert epochs_run == [3]
    assert resumed.state.epoch == 3 and resumed.state.iteration == 3 * 2
    for name, value in saved.items():
        torch.testing.assert_close(at_start[name], value)
    assert float(new_optimizer.state_dict()["state"][0]["step"]) == float(saved_step) + 2  # Adam state restored too
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint_epoch=3.pt"
    assert torch.load(tmp_path / "checkpoint_epoch=3.pt", weights_only=True)["trainer"]["iteration"] == 6


def test_latest_checkpoint_loader_without_checkpoint_trains_from_scratch(tmp_path, caplog):
    trainer, net, _ = _trainer(max_epochs=1, seed=0)
    initial = net.weight.detach().clone()
    loader = LatestCheckpointLoader(tmp_path / "checkpoints", {"network": net, "trainer": trainer}, name="resume_test")
    with caplog.at_level("INFO", logger="resume_test"):
        loader.attach(trainer)
    assert "no checkpoint in" in caplog.text and "training from scratch" in caplog.text
    epochs = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda engine: epochs.append(engine.state.epoch))
    trainer.run()
    assert epochs == [1] and not torch.equal(net.weight, initial)


def test_weights_exporter_writes_on_completion_only(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    path = tmp_path / "models" / "model.pt"

    def fail(engine, batch):
        raise RuntimeError("killed mid-training")

    broken = Engine(fail)
    WeightsExporter(net, path).attach(broken)
    with pytest.raises(RuntimeError, match="killed"):
        broken.run([0, 1], max_epochs=1)
    assert not path.exists()

    engine = Engine(lambda engine, batch: None)
    WeightsExporter(net, path).attach(engine)
    engine.run([0], max_epochs=2)
    state = torch.load(path, weights_only=True)
    assert sorted(state) == sorted(net.state_dict())
    torch.manual_seed(1)
    fresh = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    load_weights(fresh, path)
    for name, value in net.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[name], value)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]


def test_weights_exporter_interrupted_write_keeps_the_old_file(monkeypatch, tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"previous weights")
    net = torch.nn.Linear(2, 2)

    def dying_save(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"half")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", dying_save)
    engine = Engine(lambda engine, batch: None)
    WeightsExporter(net, path).attach(engine)
    with pytest.raises(OSError):
        engine.run([0], max_epochs=1)
    assert path.read_bytes() == b"previous weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
