"""Other tools' formats: nanoGPT's checkpoints and meta.pkl."""
