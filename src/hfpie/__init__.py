"""hfpie: High-Frequency aware Perceptual Image Enhancement (Roh & Kang, arXiv 2105.11711).

    >>> from hfpie import enhance                          # doctest: +SKIP
    >>> clean = enhance("noisy.png", task="denoise")       # doctest: +SKIP

Where things are: the network in :mod:`hfpie.models`, the tiler in :mod:`hfpie.tiling`, the weight
loader in :mod:`hfpie.hub`, file I/O in :mod:`hfpie.io`, the CLI in :mod:`hfpie.cli`; training in the
optional :mod:`hfpie.training` (``pip install hfpie[train]``).
"""

from .api import enhance
from .errors import (
    HfpieError,
    ImageReadError,
    ModelNotFoundError,
    NoPretrainedWeightsError,
    UnsupportedImageError,
    WeightsIntegrityError,
)
from .hub import list_models, load_model
from .models import HFPIEConfig, HFPIENet, config_from_preset

__version__ = "0.1.0"

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
