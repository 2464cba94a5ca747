"""One trainer for every task: data, losses, optimiser, EMA, validation, checkpoints, export.

Reads top to bottom: :func:`train` builds everything from a :class:`TrainConfig`, then loops over
steps. The batch of step ``s`` is a pure function of ``(seed, s)`` (item ``i`` of the dataset is drawn
from ``default_rng([seed, 0, i])``), so a run killed at any moment and resumed from its last
checkpoint sees exactly the batches an uninterrupted run would see. With ``data_pipeline="tensor"`` the
batches are made on the training device by :class:`~hfpie.training.batched.DevicePatchBatches`, from a
generator seeded with ``(seed, s)``, with the same guarantee.

Run folder layout (outside the repository)::

    RUN/config.json         the full TrainConfig
    RUN/last.pt             model, EMA, optimiser, scheduler, step, RNG states (atomic writes)
    RUN/log.jsonl           one JSON line per logged step / validation
    RUN/best.safetensors    EMA weights of the best validation PSNR
    RUN/final.safetensors   EMA weights at the end (what gets shipped)

Scale-out: under ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in DistributedDataParallel
(NCCL on CUDA, gloo on CPU); rank ``r`` takes its own slice of each step's samples and only rank 0
writes files. ``precision="auto"`` runs the forward pass under bfloat16 autocast on CUDA and on CPUs
with native bf16 (AMX / AVX-512 BF16), with float32 master weights; CPU training uses channels-last.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Sampler

from ..checkpoint import HFPIE_FORMAT, read_checkpoint, save_checkpoint
from ..io import atomic_write_bytes
from ..models import HFPIEConfig, HFPIENet
from ..precision import autocast, cpu_has_fast_bf16
from .batched import DevicePatchBatches
from .config import TrainConfig
from .datasets import ImageFolderPairs, PairedPatchDataset
from .degradations import make_degradation
from .evaluation import evaluate
from .schedule import WallClock, make_scheduler

__all__ = ["TrainState", "evaluate", "export_weights", "plot_training_curves", "train"]


@dataclass
class TrainState:
    """What a checkpoint holds besides the config."""

    step: int = 0
    best_psnr: float = -math.inf


class _StepSampler(Sampler[int]):
    """Dataset indices of steps ``start_step, start_step + 1, ...`` for one rank."""

    def __init__(self, start_step: int, steps: int, batch_size: int, rank: int, world_size: int,
                 repeat_first: bool = False) -> None:
        self.start_step, self.steps = start_step, steps
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.repeat_first = repeat_first

    def __iter__(self):
        for step in range(self.start_step, self.steps):
            first = ((0 if self.repeat_first else step) * self.world_size + self.rank) * self.batch_size
            yield from range(first, first + self.batch_size)

    def __len__(self) -> int:
        return max(self.steps - self.start_step, 0) * self.batch_size


def _distributed() -> tuple[int, int]:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world_size


def _atomic_torch_save(payload: dict[str, Any], path: Path) -> None:
    """The resumable training state (optimiser included, so torch.save), written all or nothing."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def export_weights(network: HFPIENet, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Save a network's weights (float32) as an hfpie checkpoint (:mod:`hfpie.checkpoint`), loadable by hfpie.hub.load_network."""
    state = {k: v.detach().to(torch.float32) for k, v in network.state_dict().items()}
    return save_checkpoint(state, path, kind=HFPIE_FORMAT, config=network.config.to_dict(), metadata=metadata)


def _load_init_weights(network: HFPIENet, path: str, *, strict: bool, grow: bool = False, seed: int = 0) -> None:
    """Copy the weights of ``path`` (an hfpie checkpoint, or a folder holding ``model.safetensors``) into
    ``network``; non-strict copies the tensors whose name and shape match; ``grow`` deepens a shallower
    network's weights into this one, or into another SR tail (:func:`hfpie.training.grow.grow_state`)."""
    file = Path(path) / "model.safetensors" if Path(path).is_dir() else Path(path)
    tensors, metadata = read_checkpoint(file)
    source = {name: value.float() for name, value in tensors.items()}
    if grow and "config" in metadata:
        from .grow import grow_state

        source_config = HFPIEConfig.from_dict(json.loads(metadata["config"]))
        if source_config != network.config:
            source = grow_state(source, source_config, network.config, seed=seed)
    if strict:
        network.load_state_dict(source, strict=True)
        return
    target = network.state_dict()
    matching = {name: value for name, value in source.items()
                if name in target and target[name].shape == value.shape}
    if not matching:
        raise ValueError(f"{path}: no tensor matches the network's names and shapes; is it an hfpie model?")
    network.load_state_dict(matching, strict=False)


def _validation_pairs(config: TrainConfig) -> ImageFolderPairs | None:
    if not config.val_folder:
        return None
    if config.task == "denoise":
        return ImageFolderPairs(config.val_folder, "denoise", sigma=config.val_sigma)
    if config.task == "sr":
        return ImageFolderPairs(config.val_folder, "sr", scale=config.scale)
    return ImageFolderPairs(config.val_folder, config.task)


def _build_losses(config: TrainConfig, device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]:
    """The generator's pixel-level objective: L1 (+ MSE) + HPF loss + soft-GMS-masked L1, as configured."""
    from .losses import l1_loss, soft_gms_mask

    highpass = None
    if config.hpf_weight > 0:
        from .highpass import HighPassLoss, load_highpass_net

        highpass = HighPassLoss(load_highpass_net(config.hpf_checkpoint)).to(device)

    def objective(output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = {"l1": config.l1_weight * l1_loss(output, target)}
        if config.mse_weight > 0:
            terms["mse"] = config.mse_weight * torch.nn.functional.mse_loss(output.float(), target.float())
        if highpass is not None:
            terms["hpf"] = config.hpf_weight * highpass(output, target)
        if config.gms_weight > 0:
            mask = soft_gms_mask(output.detach().float().clamp(0, 1), target.float())
            terms["gms"] = config.gms_weight * l1_loss(output, target, mask=mask)
        terms["total"] = sum(terms.values())  # type: ignore[assignment]
        return terms

    return objective


def training_precision(config: TrainConfig, device: torch.device) -> str:
    """The precision of the forward pass: "bf16" or "fp32" (``config.precision`` resolved for ``device``)."""
    if config.precision == "auto":
        fast = device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16())
        return "bf16" if fast else "fp32"
    return config.precision


def _rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state()[1].tolist(),
                              "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(("MT19937", np.array(states["numpy"], dtype=np.uint32), 624, 0, 0.0))
    random.setstate((3, tuple(states["python"]), None))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _tensorboard_writer(config: TrainConfig, run_dir: Path) -> Any:
    """A SummaryWriter when enabled and the tensorboard package is installed, else None."""
    if not config.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: the JSONL log has everything
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


@dataclass
class _Run:
    """Everything one training run holds: the network and its EMA, optimisers, where it runs, its state."""

    config: TrainConfig
    network: HFPIENet
    model: nn.Module
    """The network as stepped: wrapped in DistributedDataParallel under torchrun."""
    ema: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    discriminator: nn.Module | None
    d_optimizer: torch.optim.Optimizer | None
    device: torch.device
    precision: str
    memory_format: torch.memory_format
    state: TrainState
    clock: WallClock
    """Seconds of training so far (started with the first step): drives ``lr_schedule = "cosine-time"``."""

    @property
    def evaluated(self) -> HFPIENet:
        """What validation scores and exports: the EMA weights when there are any."""
        return self.ema.module if self.ema is not None else self.network


def _device(config: TrainConfig, world_size: int) -> torch.device:
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and world_size > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def _build(config: TrainConfig, device: torch.device, world_size: int) -> _Run:
    """Network (initialised from ``init_weights`` when given), EMA, Adam and its schedule, discriminator."""
    torch.manual_seed(config.seed)
    network = HFPIENet(config.network_config())
    if config.init_weights:
        _load_init_weights(network, config.init_weights, strict=config.init_strict, grow=config.init_grow,
                           seed=config.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    network.to(device).to(memory_format=memory_format)
    ema = torch.optim.swa_utils.AveragedModel(
        network, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema_decay)
    ) if config.ema_decay > 0 else None
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate, betas=config.adam_betas)
    clock = WallClock()
    scheduler = make_scheduler(optimizer, config, clock)
    discriminator = d_optimizer = None
    if config.gan_weight > 0:
        from .gan import DiscriminatorConfig, PatchDiscriminator

        discriminator = PatchDiscriminator(DiscriminatorConfig()).to(device)
        d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=config.discriminator_learning_rate,
                                       betas=config.adam_betas)
    model: nn.Module = network
    if world_size > 1:
        model = nn.parallel.DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None)
    return _Run(config, network, model, ema, optimizer, scheduler, discriminator, d_optimizer, device,
                training_precision(config, device), memory_format, TrainState(), clock)


def _restore(run: _Run, path: Path) -> None:
    """Continue from the checkpoint at ``path``: weights, EMA, optimisers, schedule, step, RNG states."""
    checkpoint = torch.load(path, map_location=run.device, weights_only=True)
    run.network.load_state_dict(checkpoint["model"])
    run.optimizer.load_state_dict(checkpoint["optimizer"])
    run.scheduler.load_state_dict(checkpoint["scheduler"])
    if run.ema is not None:
        run.ema.load_state_dict(checkpoint["ema"])
    if run.discriminator is not None and "discriminator" in checkpoint:
        run.discriminator.load_state_dict(checkpoint["discriminator"])
        run.d_optimizer.load_state_dict(checkpoint["d_optimizer"])  # type: ignore[union-attr]
    run.state = TrainState(step=checkpoint["step"], best_psnr=checkpoint["best_psnr"])
    _set_rng_states(checkpoint["rng"])


def _save(run: _Run, path: Path) -> None:
    payload = {"model": run.network.state_dict(), "optimizer": run.optimizer.state_dict(),
               "scheduler": run.scheduler.state_dict(), "step": run.state.step, "best_psnr": run.state.best_psnr,
               "rng": _rng_states(), "config": run.config.to_dict()}
    if run.ema is not None:
        payload["ema"] = run.ema.state_dict()
    if run.discriminator is not None:
        payload["discriminator"] = run.discriminator.state_dict()
        payload["d_optimizer"] = run.d_optimizer.state_dict()  # type: ignore[union-attr]
    _atomic_torch_save(payload, path)


def _batches(run: _Run, rank: int, world_size: int):
    """(degraded, clean) batches from the run's step on: the NumPy pipeline through a DataLoader, or
    the tensor pipeline on the training device (``data_pipeline``)."""
    config = run.config
    degradation = make_degradation(config.task, **({"scale": config.scale} if config.task == "sr" else {}),
                                   **config.degradation)
    dataset = PairedPatchDataset(
        list(config.train_folders), degradation, config.patch_size, seed=config.seed,
        length=config.steps * config.batch_size * world_size, jpeg_downscale=config.jpeg_downscale,
    )
    if config.data_pipeline == "tensor":
        return DevicePatchBatches.from_dataset(dataset, run.device).steps(
            run.state.step, config.steps, config.batch_size, rank=rank, world_size=world_size,
            repeat_first=config.overfit_batch,
        )
    return DataLoader(
        dataset, batch_size=config.batch_size, num_workers=config.num_workers,
        sampler=_StepSampler(run.state.step, config.steps, config.batch_size, rank, world_size, config.overfit_batch),
        pin_memory=run.device.type == "cuda",
    )


def _step(run: _Run, degraded: torch.Tensor, clean: torch.Tensor, objective: Callable) -> dict[str, float]:
    """One optimisation step (generator and, when training a GAN, discriminator); the loss terms."""
    config = run.config
    run.model.train()
    if run.discriminator is not None:
        from .gan import gan_training_step

        losses = gan_training_step(
            run.model, run.discriminator, run.optimizer, run.d_optimizer, degraded, clean,
            generator_loss_fn=lambda output, target: objective(output, target)["total"],
            adversarial_weight=config.gan_weight, kind=config.gan_kind,
        )
        losses["total"] = losses["generator_total"]
    else:
        with autocast(run.precision, run.device):
            output = run.model(degraded)
        terms = objective(output.float(), clean)
        run.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(run.network.parameters(), config.grad_clip)
        run.optimizer.step()
        losses = {name: float(value.detach()) for name, value in terms.items()}
    run.scheduler.step()
    if run.ema is not None:
        run.ema.update_parameters(run.network)
    run.state.step += 1
    return losses


class _Log:
    """``log.jsonl`` (and TensorBoard when enabled): a line per ``log_every`` steps with the mean step,
    data and compute times of the window, and a line per validation. Rank 0 only."""

    def __init__(self, config: TrainConfig, run_dir: Path) -> None:
        self.config = config
        self.file = (run_dir / "log.jsonl").open("a")
        self.board = _tensorboard_writer(config, run_dir)
        self.data_time = self.compute_time = 0.0
        self.window_start = time.perf_counter()

    def _write(self, record: dict[str, Any], prefix: str) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.board is not None:
            for name, value in record.items():
                if name not in {"step", "time"}:
                    self.board.add_scalar(f"{prefix}/{name}", value, record["step"])

    def step(self, step: int, end_step: int, learning_rate: float, losses: dict[str, float]) -> None:
        if step % self.config.log_every and step != end_step:
            return
        steps = self.config.log_every if step % self.config.log_every == 0 else step % self.config.log_every
        steps = max(steps, 1)
        self._write({"step": step, "lr": learning_rate, **losses,
                     "step_time": (time.perf_counter() - self.window_start) / steps,
                     "data_time": self.data_time / steps, "compute_time": self.compute_time / steps,
                     "time": time.time()}, "train")
        self.data_time = self.compute_time = 0.0
        self.window_start = time.perf_counter()

    def validation(self, step: int, scores: dict[str, float]) -> None:
        self._write({"step": step, "val_psnr": scores["psnr"], "val_ssim": scores["ssim"], "time": time.time()}, "val")

    def close(self) -> None:
        self.file.close()
        if self.board is not None:
            self.board.close()


def _validate(run: _Run, validation: ImageFolderPairs, run_dir: Path, log: _Log) -> None:
    """Score the EMA weights; keep them as ``best.safetensors`` when they beat the best so far."""
    config = run.config
    scores = evaluate(run.evaluated, validation, crop_border=config.scale if config.task == "sr" else 0,
                      y_channel=config.task == "sr", max_images=config.val_max_images, device=run.device)
    if scores["psnr"] > run.state.best_psnr:
        run.state.best_psnr = scores["psnr"]
        export_weights(run.evaluated, run_dir / "best.safetensors", {"step": str(run.state.step), "task": config.task})
    log.validation(run.state.step, scores)


def _out_of_time(config: TrainConfig, elapsed: float, device: torch.device, world_size: int) -> bool:
    """Whether ``time_limit_s`` has passed; under torchrun every rank stops at the same step."""
    out = config.time_limit_s is not None and elapsed >= config.time_limit_s
    if world_size > 1:
        flag = torch.tensor([float(out)], device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        out = bool(flag.item())
    return out


def train(config: TrainConfig, run_dir: str | Path, *, resume: bool = False,
          progress: bool = True, stop_after: int | None = None) -> HFPIENet:
    """Train (or resume) a model; returns the EMA network. ``stop_after`` ends early (for tests)."""
    rank, world_size = _distributed()
    if config.threads:
        torch.set_num_threads(config.threads)
    run_dir = Path(run_dir)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
    run = _build(config, _device(config, world_size), world_size)
    checkpoint_path = run_dir / "last.pt"
    if resume and checkpoint_path.exists():
        _restore(run, checkpoint_path)
    elif rank == 0:
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    batches = _batches(run, rank, world_size)
    objective = _build_losses(config, run.device)
    validation = _validation_pairs(config) if rank == 0 else None
    log = _Log(config, run_dir) if rank == 0 else None
    end_step = config.steps if stop_after is None else min(config.steps, run.state.step + stop_after)
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, initial=run.state.step, unit="step", dynamic_ncols=True)

    tick = time.perf_counter()
    run.clock.start()  # the time limit and a cosine-time schedule both read this clock
    for degraded, clean in batches:
        if run.state.step >= end_step:
            break
        degraded = degraded.to(run.device, non_blocking=True).contiguous(memory_format=run.memory_format)
        clean = clean.to(run.device, non_blocking=True).contiguous(memory_format=run.memory_format)
        step_start = time.perf_counter()
        losses = _step(run, degraded, clean, objective)
        step = run.state.step
        out_of_time = _out_of_time(config, run.clock(), run.device, world_size)
        final = step == config.steps or out_of_time
        if log is not None:
            log.data_time += step_start - tick
            log.compute_time += time.perf_counter() - step_start
            # the last step is always logged (also when the clock stops the run between log steps)
            log.step(step, step if final else end_step, run.scheduler.get_last_lr()[0], losses)
        tick = time.perf_counter()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses.get('total', 0.0):.4f}")
        if validation is not None and log is not None and (step % config.val_every == 0 or final):
            _validate(run, validation, run_dir, log)
        if rank == 0 and (step % config.checkpoint_every == 0 or step == end_step or final):
            _save(run, checkpoint_path)
        if final and rank == 0:
            export_weights(run.evaluated, run_dir / "final.safetensors", {"step": str(step), "task": config.task})
        if out_of_time:
            break
    if bar is not None:
        bar.close()
    if log is not None:
        log.close()
    return run.evaluated.eval()


def plot_training_curves(run_dir: str | Path, output: str | Path) -> Path:
    """PNG of the training loss and validation PSNR curves from ``log.jsonl`` (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in Path(run_dir, "log.jsonl").read_text().splitlines() if line.strip()]
    steps = [r["step"] for r in records if "total" in r]
    losses = [r["total"] for r in records if "total" in r]
    val = [(r["step"], r["val_psnr"]) for r in records if "val_psnr" in r]
    figure, left = plt.subplots(figsize=(7, 4))
    left.plot(steps, losses, color="tab:blue")
    left.set_xlabel("step")
    left.set_ylabel("training loss", color="tab:blue")
    left.set_yscale("log")
    if val:
        right = left.twinx()
        right.plot(*zip(*val), "o-", color="tab:red")
        right.set_ylabel("validation PSNR (dB)", color="tab:red")
    figure.tight_layout()
    figure.savefig(output, dpi=120)
    plt.close(figure)
    return Path(output)

