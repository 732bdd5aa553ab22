"""myllm: one small GPT, trained and sampled natively in PyTorch and in MLX."""

__version__ = "0.1.0"
