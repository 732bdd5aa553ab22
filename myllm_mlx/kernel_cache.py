"""A writable folder for MLX's compiled CPU kernels, which it keeps under the temp directory.

MLX's CPU backend compiles fused kernels (mx.compile) into shared libraries under
std::filesystem::temp_directory_path() / "mlx" / VERSION / "cpu", that is under $TMPDIR (or $TMP,
$TEMP, $TEMPDIR, else /tmp), and has no setting of its own for the folder. When that directory is
missing or read-only the first compiled step fails with a C++ filesystem error. Here, before MLX
compiles anything, an unusable one is replaced by a writable folder, and the user is told in one
line.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from myllm.errors import UserError

# The variables libstdc++ and libc++ read for temp_directory_path(), first set wins.
TEMP_VARIABLES = ("TMPDIR", "TMP", "TEMP", "TEMPDIR")


def is_writable_directory(path: Path) -> bool:
    """True when a file can be created in `path` (access() is not enough on read-only mounts)."""
    try:
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


def ensure_writable_kernel_cache() -> None:
    """Point TMPDIR at a writable folder when the one MLX would use cannot be written."""
    variable = next((name for name in TEMP_VARIABLES if os.environ.get(name)), None)
    if variable is None or is_writable_directory(Path(os.environ[variable])):
        return
    unusable = os.environ[variable]
    fallbacks = [Path("/tmp"), Path.home() / ".cache" / "myllm" / "tmp"]
    for fallback in fallbacks:
        try:
            fallback.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if is_writable_directory(fallback):
            os.environ["TMPDIR"] = str(fallback)  # the first variable read: it wins
            sys.stderr.write(
                f"note: {variable}={unusable} is not a writable directory; MLX keeps its "
                f"compiled kernels in {fallback} instead\n"
            )
            return
    raise UserError(
        f"{variable}={unusable} is not a writable directory and MLX needs one for its compiled "
        "kernels: set TMPDIR to a writable directory"
    )
