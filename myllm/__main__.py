"""`python -m myllm`: the same CLI as the `myllm` script (needed under mlx.launch / torchrun)."""

from myllm.cli import main

main()
