"""Checkpoints: the framework-free state, its validation, checksums and file formats."""
