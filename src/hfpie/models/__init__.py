"""The HFPIE network and its building blocks."""

from .layers import RCAB, ChannelAttention, EdgeFilterBank, FeatureAttention, edge_filters, local_average
from .inference import optimize_for_inference
from .network import PRESETS, HFPIEConfig, HFPIENet, config_from_preset

__all__ = [
    "PRESETS",
    "RCAB",
    "ChannelAttention",
    "EdgeFilterBank",
    "FeatureAttention",
    "HFPIEConfig",
    "HFPIENet",
    "config_from_preset",
    "edge_filters",
    "local_average",
    "optimize_for_inference",
]
