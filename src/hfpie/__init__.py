"""hfpie: High-Frequency aware Perceptual Image Enhancement (Roh & Kang, arXiv 2105.11711).

    >>> from hfpie import enhance                          # doctest: +SKIP
    >>> clean = enhance("noisy.png", task="denoise")       # doctest: +SKIP

Where things are: the network in :mod:`hfpie.models`, the tiler in :mod:`hfpie.tiling`, the weight
loader in :mod:`hfpie.hub`, file I/O in :mod:`hfpie.io`, the CLI in :mod:`hfpie.cli`; training in the
optional :mod:`hfpie.training` (``pip install hfpie[train]``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    HfpieError,
    ImageReadError,
    ModelNotFoundError,
    NoPretrainedWeightsError,
    UnsupportedImageError,
    WeightsIntegrityError,
)

if TYPE_CHECKING:
    from .api import enhance
    from .hub import list_models, load_model
    from .models import HFPIEConfig, HFPIENet, config_from_preset

__version__ = "0.1.0"

# What imports torch is loaded on first use, so `hfpie --help` (and `import hfpie.errors`) stays light.
_LAZY = {"enhance": ".api", "list_models": ".hub", "load_model": ".hub", "HFPIEConfig": ".models",
         "HFPIENet": ".models", "config_from_preset": ".models"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'hfpie' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value

__all__ = [
    "HFPIEConfig",
    "HFPIENet",
    "HfpieError",
    "ImageReadError",
    "ModelNotFoundError",
    "NoPretrainedWeightsError",
    "UnsupportedImageError",
    "WeightsIntegrityError",
    "__version__",
    "config_from_preset",
    "enhance",
    "list_models",
    "load_model",
]
