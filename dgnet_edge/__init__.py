"""dgnet-edge: train DG-Net person re-identification models and compile them for the edge."""

__version__ = "0.1.0"
