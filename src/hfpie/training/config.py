"""The typed training config: one frozen dataclass, loadable from a small TOML or YAML file.

Example ``configs/denoise.toml``::

    task = "denoise"
    preset = "small"
    train_folders = ["../shared/data/train/bsds400", "../shared/data/train/sun_hays80"]
    val_folder = "../shared/data/val/cbsd68"
    steps = 20000
    [model]                # any HFPIEConfig field overrides the preset
    attention_window = 32

Relative folders are resolved against the current directory (not the config file), so the same
config works from the repository root locally and in CI.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..models import HFPIEConfig, config_from_preset
from ..tasks import TRAINING_TASKS, check_task

__all__ = ["TrainConfig", "load_train_config"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs. Every field can be overridden on the command line."""

    # What to train
    task: str = "denoise"
    """One of "denoise", "denoise-real", "deblur", "sr"."""
    scale: int = 1
    """Super-resolution factor (sr only)."""
    preset: str = "small"
    """Network preset of hfpie.models.PRESETS."""
    model: dict[str, Any] = field(default_factory=dict)
    """HFPIEConfig fields that override the preset."""
    degradation: dict[str, Any] = field(default_factory=dict)
    """Options of hfpie.training.degradations.make_degradation for the task."""

    # Data
    train_folders: tuple[str, ...] = ()
    val_folder: str | None = None
    val_sigma: int = 25
    """Noise level of the denoising validation (0..255 units)."""
    val_max_images: int = 8
    """Validate on the first N images (sorted) to keep validation cheap; 0 = all."""
    patch_size: int = 64
    """Training patch side in output (HR) pixels."""
    batch_size: int = 16
    jpeg_downscale: int = 1
    """Downscale JPEG training sources by this factor at load (2 removes JPEG artefacts for SR)."""
    num_workers: int = 0
    data_pipeline: str = "numpy"
    """How batches are made: "numpy" (PairedPatchDataset, per-sample NumPy/OpenCV, in num_workers DataLoader
    workers) or "tensor" (hfpie.training.batched: the images kept on the training device as uint8, every batch
    cropped and degraded there by tensor operations; for GPUs)."""
    overfit_batch: bool = False
    """Debugging: train on the first batch over and over (the loss must then fall towards zero)."""

    # Optimisation (the paper: Adam, lr 1e-4, x0.99 every 1000 steps)
    steps: int = 10000
    learning_rate: float = 1e-4
    """The starting rate ("step") or the peak rate after warm-up ("cosine")."""
    lr_schedule: str = "step"
    """"step" (the paper's: x lr_decay every lr_decay_every steps) or "cosine" (hfpie.training.schedule:
    a cosine from learning_rate down to min_learning_rate at schedule_steps, the planned length of the
    whole campaign across sessions, entered through a linear warm-up of warmup_steps in every run), or
    "cosine-time" (the same cosine over the run's time_limit_s of wall time: for a device loan of known
    length whose step rate is unknown beforehand, scripts/gpu_plan.py)."""
    lr_decay: float = 0.99
    lr_decay_every: int = 1000
    warmup_steps: int = 0
    """Cosine: the first steps of a run ramp the rate linearly up to the curve (Adam starts afresh)."""
    schedule_steps: int = 0
    """Cosine: the step of the campaign at which the rate reaches min_learning_rate (and stays)."""
    schedule_start: int = 0
    """Cosine: where this run starts on the campaign's curve (the steps of earlier sessions), so a resumed
    campaign continues the same curve instead of starting a new one."""
    min_learning_rate: float = 1e-6
    adam_betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    """Max gradient norm; 0 disables clipping."""
    ema_decay: float = 0.999
    """EMA of the weights (exported); 0 disables it."""

    # Losses
    l1_weight: float = 1.0
    mse_weight: float = 0.0
    """Weight of a mean-squared-error term (the loss PSNR measures), e.g. an L2 finish late in a campaign:
    l1_weight=0 mse_weight=1."""
    hpf_weight: float = 0.0
    """Weight of the high-pass filtering loss; needs hpf_checkpoint."""
    hpf_checkpoint: str | None = None
    gms_weight: float = 0.0
    """Weight of the soft-GMS-masked L1 term (the paper's masking of badly reconstructed regions)."""

    # GAN fine-tuning (perceptual model)
    gan_weight: float = 0.0
    """Adversarial weight lambda; > 0 turns on the discriminator."""
    gan_kind: str = "relativistic"
    discriminator_learning_rate: float = 1e-4
    init_weights: str | None = None
    """Start from these safetensors weights (e.g. the PSNR model before GAN fine-tuning)."""
    init_strict: bool = True
    """With False, copy only the init tensors whose name and shape match (e.g. an x4 body into an x2 model)."""
    init_grow: bool = False
    """With True, ``init_weights`` may come from a shallower network (fewer RCABs per scale, all else equal):
    it is grown into this one with new blocks that start as identities (hfpie.training.grow), so training
    starts from the same outputs."""

    # Bookkeeping
    seed: int = 0
    val_every: int = 1000
    checkpoint_every: int = 500
    log_every: int = 50
    tensorboard: bool = True
    """Also log scalars to RUN/tensorboard when the tensorboard package is installed (skipped if not)."""
    device: str | None = None
    """cpu, cuda, ...; default: cuda if available, else cpu."""
    precision: str = "auto"
    """Forward-pass precision: "auto" (bf16 autocast on CUDA and on CPUs with AMX / AVX-512 BF16,
    else fp32), "bf16" or "fp32". Weights and optimiser state stay float32 either way."""
    threads: int | None = None
    """torch.set_num_threads for CPU training; default: torch's choice."""
    time_limit_s: float | None = None
    """Stop after this many seconds of training (validate, checkpoint and export final weights first)."""

    def __post_init__(self) -> None:
        check_task(self.task, TRAINING_TASKS)
        if self.task == "sr" and self.scale < 2:
            raise ValueError("task 'sr' needs scale >= 2")
        if self.task != "sr" and self.scale != 1:
            raise ValueError(f"task {self.task!r} is scale 1; remove scale={self.scale}")
        if self.patch_size % (self.scale * 4):
            raise ValueError(f"patch_size must be a multiple of 4 * scale = {4 * self.scale}")
        if self.data_pipeline not in {"numpy", "tensor"}:
            raise ValueError(f"data_pipeline must be numpy or tensor, got {self.data_pipeline!r}")
        if self.precision not in {"auto", "bf16", "fp32"}:
            raise ValueError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.lr_schedule not in {"step", "cosine", "cosine-time"}:
            raise ValueError(f"lr_schedule must be step, cosine or cosine-time, got {self.lr_schedule!r}")
        if self.lr_schedule == "cosine-time" and not self.time_limit_s:
            raise ValueError("a cosine-time schedule runs over time_limit_s; set time_limit_s (seconds)")
        if self.lr_schedule == "cosine" and self.schedule_steps <= 0:
            raise ValueError("a cosine schedule needs schedule_steps > 0, the campaign's planned length in steps")
        if self.lr_schedule != "step" and not 0 < self.min_learning_rate <= self.learning_rate:
            raise ValueError(f"min_learning_rate must be in (0, learning_rate={self.learning_rate}], "
                             f"got {self.min_learning_rate}")
        if self.hpf_weight > 0 and not self.hpf_checkpoint:
            raise ValueError("hpf_weight > 0 needs hpf_checkpoint (train one with `hfpie train-hpf`)")

    def network_config(self) -> HFPIEConfig:
        # from_dict turns TOML/JSON lists into tuples and names unknown fields
        return HFPIEConfig.from_dict({**config_from_preset(self.preset, scale=self.scale).to_dict(), **self.model})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def with_overrides(self, overrides: list[str] | tuple[str, ...]) -> TrainConfig:
        """This config with ``key=value`` overrides, as :func:`load_train_config` applies them."""
        return TrainConfig.from_dict(_apply_overrides(dataclasses.asdict(self), overrides))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(values) - set(fields)
        if unknown:
            raise ValueError(f"unknown training config keys {sorted(unknown)}; known keys: {sorted(fields)}")
        converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**converted)


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like key=value (e.g. steps=2000)")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a bare string
    return key.strip(), value


def load_train_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) config and apply ``key=value`` overrides.

    Overrides use JSON values (``steps=2000``, ``train_folders=["a","b"]``, ``model.num_features=48``).
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        text = path.read_text()
        if path.suffix == ".toml":
            values = tomllib.loads(text)
        elif path.suffix in {".yaml", ".yml"}:
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            raise ValueError(f"{path}: configs are .toml or .yaml files")
    return TrainConfig.from_dict(_apply_overrides(values, overrides))


def _apply_overrides(values: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``values`` with ``key=value`` overrides applied; ``section.key=value`` changes one key of a section."""
    for override in overrides:
        key, value = _parse_override(override)
        if "." in key:
            section, name = key.split(".", 1)
            values[section] = {**values.get(section, {}), name: value}
        else:
            values[key] = value
    return values
