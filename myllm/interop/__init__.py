"""Other tools' formats: the name-table mechanism (weight_map), nanoGPT's ckpt.pt and meta.pkl."""
