"""DHVAETrainer: adversarial training of the dHVAE generator and its discriminator on pytorch-ignite."""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence

import torch
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys
from torch.optim import Optimizer
from torch.utils.data import DataLoader

from dhvae_monai.engines.prepare_batch import PreparePairBatch
from dhvae_monai.losses.dhvae_loss import DHVAELoss

__all__ = ["DHVAETrainer", "NonFiniteLossError", "loss_terms"]


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite; raised before any optimiser step writes non-finite weights."""


def loss_terms(output: dict[str, Any] | Sequence[dict[str, Any]]) -> dict[str, float]:
    """
    The scalar entries of a trainer's ``engine.state.output``, for ``StatsHandler`` / ``TensorBoardStatsHandler``.

    Args:
        output: the engine output, a dictionary or, when the trainer decollates, a list of per-sample dictionaries.

    Returns:
        ``{name: float}`` for every scalar entry (the loss and each of its terms).

    Example::

        StatsHandler(output_transform=loss_terms, tag_name="train")
    """
    if isinstance(output, (list, tuple)):
        output = output[0]
    return {
        str(name): float(value)
        for name, value in output.items()
        if isinstance(value, (int, float)) or (isinstance(value, torch.Tensor) and value.numel() == 1)
    }


class DHVAETrainer(SupervisedTrainer):
    """
    Trains a :class:`~dhvae_monai.networks.nets.DHVAE` and its :class:`~dhvae_monai.networks.nets.PairDiscriminator`.

    One iteration is one generator update on the dHVAE objective (:class:`~dhvae_monai.losses.DHVAELoss`, the
    adversarial term included once ``engine.state.iteration`` exceeds ``discriminator_start``), then, while the
    adversarial term is on, one discriminator update on the detached reconstructions after the flow. Every loss term is
    stored in ``engine.state.output`` under its name (``loss``, ``elbo_loss``, ``pixel_loss``, ``perceptual_loss``,
    ``reconstruction_loss``, ``regulariser_loss``, ``generator_adversarial_loss``, ``adaptive_weight``,
    ``discriminator_loss``), next to ``image`` (the real pairs) and ``pred`` (the reconstructions), so MONAI's handlers
    log them (see :func:`loss_terms`). Checkpoint both networks and both optimisers, plus the trainer for its
    iteration count, with ``CheckpointSaver(save_dict={"generator": ..., "discriminator": ..., "generator_optimizer":
    ..., "discriminator_optimizer": ..., "trainer": trainer})``; ``CheckpointLoader`` resumes from that.

    A NaN or infinite term stops training with :class:`NonFiniteLossError` naming the term and the iteration,
    before any optimiser step.

    Args:
        device: device of the networks and batches.
        max_epochs: number of epochs.
        train_data_loader: loader of 2D slice dictionaries with ``image`` and ``label``.
        network: the DHVAE generator.
        optimizer: optimiser of the generator's parameters.
        discriminator: the PatchGAN on pairs; None trains without it (then the loss must not need it).
        discriminator_optimizer: optimiser of the discriminator's parameters (required with a discriminator).
        loss_function: the :class:`DHVAELoss`; default ``DHVAELoss()``.
        discriminator_start: iterations before the adversarial term and the discriminator updates switch on.
            The authors' 30001 is never reached by their own 500-epoch run (``method.md`` §6); the default switches it
            on within a short run.
        prepare_batch: turns a batch into ``(pair, pair)``; default :class:`PreparePairBatch`.
        epoch_length, non_blocking, iteration_update, postprocessing, key_train_metric, additional_metrics,
        metric_cmp_fn, train_handlers, amp, event_names, event_to_attr, decollate, optim_set_to_none, to_kwargs,
        amp_kwargs: as in :class:`~monai.engines.SupervisedTrainer` (``decollate`` defaults to False here: the
            output holds batch-level loss terms).

    Raises:
        ValueError: a discriminator without its optimiser, or a negative ``discriminator_start``.

    Example::

        trainer = DHVAETrainer(device, max_epochs=10, train_data_loader=loader, network=net, optimizer=opt_g,
                               discriminator=disc, discriminator_optimizer=opt_d, discriminator_start=500,
                               train_handlers=[StatsHandler(output_transform=loss_terms)])
        trainer.run()
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        network: torch.nn.Module,
        optimizer: Optimizer,
        discriminator: torch.nn.Module | None = None,
        discriminator_optimizer: Optimizer | None = None,
        loss_function: DHVAELoss | None = None,
        discriminator_start: int = 500,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        prepare_batch: Callable | None = None,
        iteration_update: Callable | None = None,
        postprocessing: Callable | None = None,
        key_train_metric: dict | None = None,
        additional_metrics: dict | None = None,
        metric_cmp_fn: Callable | None = None,
        train_handlers: Sequence | None = None,
        amp: bool = False,
        event_names: list | None = None,
        event_to_attr: dict | None = None,
        decollate: bool = False,
        optim_set_to_none: bool = False,
        to_kwargs: dict | None = None,
        amp_kwargs: dict | None = None,
    ) -> None:
        if discriminator is not None and discriminator_optimizer is None:
            raise ValueError("a discriminator needs its discriminator_optimizer.")
        if discriminator_start < 0:
            raise ValueError(f"discriminator_start must be >= 0, got {discriminator_start}.")
        optional = {"metric_cmp_fn": metric_cmp_fn} if metric_cmp_fn is not None else {}
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=network,
            optimizer=optimizer,
            loss_function=DHVAELoss() if loss_function is None else loss_function,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            prepare_batch=PreparePairBatch() if prepare_batch is None else prepare_batch,
            iteration_update=iteration_update,
            postprocessing=postprocessing,
            key_train_metric=key_train_metric,
            additional_metrics=additional_metrics,
            train_handlers=train_handlers,
            amp=amp,
            event_names=event_names,
            event_to_attr=event_to_attr,
            decollate=decollate,
            optim_set_to_none=optim_set_to_none,
            to_kwargs=to_kwargs,
            amp_kwargs=amp_kwargs,
            **optional,
        )
        self.discriminator = discriminator
        self.discriminator_optimizer = discriminator_optimizer
        self.discriminator_start = discriminator_start
        self.discriminator_scaler: torch.amp.GradScaler | None = None

    def run(self) -> None:  # type: ignore[override]
        """Train; a second call continues from the current state (e.g. after ``CheckpointLoader``)."""
        self.discriminator_scaler = torch.amp.GradScaler("cuda") if self.amp else None
        super().run()

    def adversarial_active(self, iteration: int) -> bool:
        """Whether iteration ``iteration`` (1-based) includes the adversarial term and a discriminator update."""
        return (
            self.discriminator is not None
            and self.loss_function.uses_discriminator
            and iteration > self.discriminator_start
        )

    def _iteration(self, engine: DHVAETrainer, batchdata: dict[str, torch.Tensor]) -> dict:  # type: ignore[override]
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        pair, _ = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        iteration = engine.state.iteration
        adversarial = engine.adversarial_active(iteration)
        generator = engine.network
        discriminator = engine.discriminator
        engine.state.output = {Keys.IMAGE: pair, Keys.LABEL: pair}

        generator.train()
        if discriminator is not None:
            discriminator.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        with torch.autocast("cuda", enabled=engine.amp, **engine.amp_kwargs):
            # through the (possibly DistributedDataParallel-wrapped) module's forward, so DDP syncs the gradients
            output = generator(pair, return_flow=True)
            network = _unwrap(generator)
            engine.state.output[Keys.PRED] = output.reconstruction
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            terms = engine.loss_function(
                output,
                pair,
                discriminator=discriminator,
                adversarial=adversarial,
                output_layer_gradient=lambda loss: network.output_layer_gradient(loss, output),
            )
        _check_finite(terms, iteration)
        engine.state.output[Keys.LOSS] = terms["loss"]
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        _step(terms["loss"], engine.optimizer, engine.scaler)
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)

        if adversarial:
            engine.discriminator_optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
            with torch.autocast("cuda", enabled=engine.amp, **engine.amp_kwargs):
                discriminator_loss = engine.loss_function.discriminator_loss(
                    discriminator, pair, output.reconstruction
                )
            terms["discriminator_loss"] = discriminator_loss
            _check_finite({"discriminator_loss": discriminator_loss}, iteration)
            _step(
                discriminator_loss,
                engine.discriminator_optimizer,
                engine.discriminator_scaler,
                before_step=lambda: _average_gradients_across_ranks(discriminator),
            )

        engine.state.output[Keys.PRED] = output.reconstruction.detach()
        engine.state.output.update({name: value.detach() for name, value in terms.items()})
        return engine.state.output


def _unwrap(network: torch.nn.Module) -> torch.nn.Module:
    """The DHVAE inside a (Distributed)DataParallel wrapper, or the network itself."""
    return network.module if isinstance(network, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)) else network


def _check_finite(terms: dict[str, torch.Tensor], iteration: int) -> None:
    for name, value in terms.items():
        value = float(value.detach())
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"loss term '{name}' became {value} at iteration {iteration}; training stopped before the "
                "optimiser step so no non-finite weights were written. Lower the learning rate, check the inputs for "
                "NaN/Inf, or resume from the last checkpoint."
            )


def _average_gradients_across_ranks(module: torch.nn.Module) -> None:
    """
    Average ``module``'s gradients over the processes of a distributed run, unless DDP already does.

    The discriminator is called several times per iteration (on fakes in the generator step, on reals and fakes in
    its own), which a ``DistributedDataParallel`` wrapper does not allow before one backward pass; so it stays
    unwrapped and its gradients are all-reduced here, keeping its weights identical on every rank.
    """
    if isinstance(module, torch.nn.parallel.DistributedDataParallel):
        return
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    world_size = torch.distributed.get_world_size()
    if world_size == 1:
        return
    for parameter in module.parameters():
        if parameter.grad is not None:
            torch.distributed.all_reduce(parameter.grad)
            parameter.grad /= world_size


def _step(
    loss: torch.Tensor,
    optimizer: Optimizer,
    scaler: torch.amp.GradScaler | None,
    before_step: Callable[[], None] | None = None,
) -> None:
    if scaler is not None:
        scaler.scale(loss).backward()
    else:
        loss.backward()
    if before_step is not None:
        before_step()
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
