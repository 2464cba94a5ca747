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

from ..runner import run_network
from ..hub import load_network
from ..checkpoint import HFPIE_FORMAT, save_checkpoint
from ..io import atomic_write_bytes
from ..models import HFPIENet
from ..precision import autocast, cpu_has_fast_bf16
from .batched import DevicePatchBatches
from .config import TrainConfig
from .datasets import ImageFolderPairs, PairedPatchDataset
from .degradations import make_degradation
from .metrics import psnr, ssim

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
    """Save a network's weights (float32) as an hfpie checkpoint (:mod:`hfpie.checkpoint`), loadable by hfpie.hub."""
    state = {k: v.detach().to(torch.float32) for k, v in network.state_dict().items()}
    return save_checkpoint(state, path, kind=HFPIE_FORMAT, config=network.config.to_dict(), metadata=metadata)


def evaluate(network: HFPIENet, pairs: ImageFolderPairs, *, crop_border: int = 0, y_channel: bool = False,
             max_images: int = 0, device: torch.device | str = "cpu") -> dict[str, float]:
    """Mean PSNR/SSIM of ``network`` on validation pairs (uint8 outputs, the eval protocol)."""
    scores_psnr, scores_ssim = [], []
    network.eval()
    for index, (_, degraded, clean) in enumerate(pairs):
        if max_images and index >= max_images:
            break
        x = torch.from_numpy(degraded.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        y = run_network(network, x, device=device, half=False)
        output = np.round(y[0].permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)
        scores_psnr.append(psnr(output, clean, crop_border=crop_border, y_channel=y_channel))
        scores_ssim.append(ssim(output, clean, crop_border=crop_border, y_channel=y_channel))
    return {"psnr": float(np.mean(scores_psnr)), "ssim": float(np.mean(scores_ssim)), "images": len(scores_psnr)}


def _load_init_weights(network: HFPIENet, path: str, *, strict: bool) -> None:
    """Copy the weights of ``path`` into ``network``; non-strict copies the tensors whose name and shape match."""
    source = load_network(path).state_dict()
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
    """The generator's pixel-level objective: L1 + HPF loss + soft-GMS-masked L1, as configured."""
    from .losses import l1_loss, soft_gms_mask

    highpass = None
    if config.hpf_weight > 0:
        from .highpass import HighPassLoss, load_highpass_net

        highpass = HighPassLoss(load_highpass_net(config.hpf_checkpoint)).to(device)

    def objective(output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = {"l1": config.l1_weight * l1_loss(output, target)}
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


def train(config: TrainConfig, run_dir: str | Path, *, resume: bool = False,
          progress: bool = True, stop_after: int | None = None) -> HFPIENet:
    """Train (or resume) a model; returns the EMA network. ``stop_after`` ends early (for tests)."""
    rank, world_size = _distributed()
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and world_size > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if config.threads:
        torch.set_num_threads(config.threads)
    run_dir = Path(run_dir)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)

    network = HFPIENet(config.network_config())
    if config.init_weights:
        _load_init_weights(network, config.init_weights, strict=config.init_strict)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    network.to(device)
    precision = training_precision(config, device)
    memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    network.to(memory_format=memory_format)
    ema = torch.optim.swa_utils.AveragedModel(
        network, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema_decay)
    ) if config.ema_decay > 0 else None
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate, betas=config.adam_betas)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_decay_every, gamma=config.lr_decay)
    discriminator = d_optimizer = None
    if config.gan_weight > 0:
        from .gan import DiscriminatorConfig, PatchDiscriminator

        discriminator = PatchDiscriminator(DiscriminatorConfig()).to(device)
        d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=config.discriminator_learning_rate,
                                       betas=config.adam_betas)
    state = TrainState()
    checkpoint_path = run_dir / "last.pt"
    if resume and checkpoint_path.exists():
        checkpoint = torch.load(checkpoint_path, map_location=device, weights_only=True)
        network.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if ema is not None:
            ema.load_state_dict(checkpoint["ema"])
        if discriminator is not None and "discriminator" in checkpoint:
            discriminator.load_state_dict(checkpoint["discriminator"])
            d_optimizer.load_state_dict(checkpoint["d_optimizer"])  # type: ignore[union-attr]
        state = TrainState(step=checkpoint["step"], best_psnr=checkpoint["best_psnr"])
        _set_rng_states(checkpoint["rng"])
    elif rank == 0:
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")

    model: nn.Module = network
    if world_size > 1:
        model = nn.parallel.DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None)

    degradation = make_degradation(config.task, **({"scale": config.scale} if config.task == "sr" else {}),
                                   **config.degradation)
    dataset = PairedPatchDataset(
        list(config.train_folders), degradation, config.patch_size, seed=config.seed,
        length=config.steps * config.batch_size * world_size, jpeg_downscale=config.jpeg_downscale,
    )
    if config.data_pipeline == "tensor":
        loader = DevicePatchBatches.from_dataset(dataset, device).steps(
            state.step, config.steps, config.batch_size, rank=rank, world_size=world_size,
            repeat_first=config.overfit_batch,
        )
    else:
        loader = DataLoader(
            dataset, batch_size=config.batch_size, num_workers=config.num_workers,
            sampler=_StepSampler(state.step, config.steps, config.batch_size, rank, world_size, config.overfit_batch),
            pin_memory=device.type == "cuda",
        )
    objective = _build_losses(config, device)
    validation = _validation_pairs(config) if rank == 0 else None
    log_file = (run_dir / "log.jsonl").open("a") if rank == 0 else None
    board = _tensorboard_writer(config, run_dir) if rank == 0 else None
    end_step = config.steps if stop_after is None else min(config.steps, state.step + stop_after)
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, initial=state.step, unit="step", dynamic_ncols=True)

    data_time = compute_time = 0.0
    train_start = time.perf_counter()
    window_start = time.perf_counter()
    tick = time.perf_counter()
    for degraded, clean in loader:
        if state.step >= end_step:
            break
        degraded = degraded.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        clean = clean.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        started = time.perf_counter()
        data_time += started - tick
        model.train()
        if discriminator is not None:
            from .gan import gan_training_step

            losses = gan_training_step(
                model, discriminator, optimizer, d_optimizer, degraded, clean,
                generator_loss_fn=lambda output, target: objective(output, target)["total"],
                adversarial_weight=config.gan_weight, kind=config.gan_kind,
            )
            losses["total"] = losses["generator_total"]
        else:
            with autocast(precision, device):
                output = model(degraded)
            terms = objective(output.float(), clean)
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(network.parameters(), config.grad_clip)
            optimizer.step()
            losses = {name: float(value.detach()) for name, value in terms.items()}
        scheduler.step()
        if ema is not None:
            ema.update_parameters(network)
        state.step += 1
        tick = time.perf_counter()
        compute_time += tick - started

        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses.get('total', 0.0):.4f}", data=f"{data_time / max(compute_time + data_time, 1e-9):.0%}")
        if log_file is not None and (state.step % config.log_every == 0 or state.step == end_step):
            elapsed = time.perf_counter() - window_start
            steps_in_window = config.log_every if state.step % config.log_every == 0 else state.step % config.log_every
            record = {"step": state.step, "lr": scheduler.get_last_lr()[0], **losses,
                      "step_time": elapsed / max(steps_in_window, 1),
                      "data_time": data_time / max(steps_in_window, 1),
                      "compute_time": compute_time / max(steps_in_window, 1), "time": time.time()}
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
            if board is not None:
                for name, value in record.items():
                    if name not in {"step", "time"}:
                        board.add_scalar(f"train/{name}", value, state.step)
            data_time = compute_time = 0.0
            window_start = time.perf_counter()
        out_of_time = config.time_limit_s is not None and time.perf_counter() - train_start >= config.time_limit_s
        if world_size > 1:  # every rank stops at the same step
            flag = torch.tensor([float(out_of_time)], device=device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            out_of_time = bool(flag.item())
        final = state.step == config.steps or out_of_time
        evaluated = ema.module if ema is not None else network
        if validation is not None and (state.step % config.val_every == 0 or final):
            scores = evaluate(evaluated, validation, crop_border=config.scale if config.task == "sr" else 0,
                              y_channel=config.task == "sr", max_images=config.val_max_images, device=device)
            if scores["psnr"] > state.best_psnr:
                state.best_psnr = scores["psnr"]
                export_weights(evaluated, run_dir / "best.safetensors", {"step": str(state.step), "task": config.task})
            log_file.write(json.dumps({"step": state.step, "val_psnr": scores["psnr"], "val_ssim": scores["ssim"],
                                       "time": time.time()}) + "\n")
            log_file.flush()
            if board is not None:
                board.add_scalar("val/psnr", scores["psnr"], state.step)
                board.add_scalar("val/ssim", scores["ssim"], state.step)
        if rank == 0 and (state.step % config.checkpoint_every == 0 or state.step == end_step or final):
            payload = {"model": network.state_dict(), "optimizer": optimizer.state_dict(),
                       "scheduler": scheduler.state_dict(), "step": state.step, "best_psnr": state.best_psnr,
                       "rng": _rng_states(), "config": config.to_dict()}
            if ema is not None:
                payload["ema"] = ema.state_dict()
            if discriminator is not None:
                payload["discriminator"] = discriminator.state_dict()
                payload["d_optimizer"] = d_optimizer.state_dict()  # type: ignore[union-attr]
            _atomic_torch_save(payload, checkpoint_path)
        if final and rank == 0:
            export_weights(evaluated, run_dir / "final.safetensors", {"step": str(state.step), "task": config.task})
        if out_of_time:
            break
    if bar is not None:
        bar.close()
    if log_file is not None:
        log_file.close()
    if board is not None:
        board.close()
    result = ema.module if ema is not None else network
    return result.eval()


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

