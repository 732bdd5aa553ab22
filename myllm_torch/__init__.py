"""The PyTorch reference backend of myllm."""

BACKEND_NAME = "torch"
CHECKPOINT_SUFFIX = ".pt"
