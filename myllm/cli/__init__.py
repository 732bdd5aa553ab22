"""The `myllm` command line (typer + rich): `app`, and `main` for the console script.

Importing the package registers every command on `app`, one module per command, in the order
`myllm --help` lists them.
"""

from myllm.cli.app import UNDERSCORE_SPELLINGS, app, hyphenate_options, main

# isort: split
from myllm.cli import train  # noqa: F401  (each import registers its commands)

# isort: split
from myllm.cli import eval, generate  # noqa: F401

# isort: split
from myllm.cli import convert  # noqa: F401

# isort: split
from myllm.cli import compare, plot  # noqa: F401

# isort: split
from myllm.cli import bench, data  # noqa: F401

__all__ = ["UNDERSCORE_SPELLINGS", "app", "hyphenate_options", "main"]
