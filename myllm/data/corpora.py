"""Training corpora: a pinned manifest, sha256-checked fetching, Gutenberg stripping.

A source comes from a mirror folder (--mirror DIR, else MYLLM_DATA_MIRROR) or, with neither, from
its URL. It is checked against the manifest's sha256 before anything is written, and the training
text is written atomically, so a bad source never replaces a good corpus.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import json
import os
import re
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from myllm.atomic import atomic_write
from myllm.errors import UserError
from myllm.paths import check_directory, check_file

MIRROR_ENV = "MYLLM_DATA_MIRROR"
DEFAULT_CORPUS = "tinyshakespeare"
DOWNLOAD_TIMEOUT_SECONDS = 60
MANIFEST_NAME = "corpora_manifest.json"  # inside the package, so an installed wheel has it

_BYTE_ORDER_MARK = b"\xef\xbb\xbf"
_START_MARKER = "*** START OF"
_END_MARKER = "*** END OF"
# Older Gutenberg ebooks close the book, still inside the markers, with "End of Project
# Gutenberg's ..."; ebook #100 also puts its 2017 "* CONTENT NOTE" there. Both are boilerplate.
_CLOSING_MATTER = re.compile(r"\s*(End of (the )?Project Gutenberg|\* CONTENT NOTE)", re.IGNORECASE)


@dataclass(frozen=True)
class CorpusInfo:
    """One manifest entry: where a corpus comes from and the sha256 that pins its content."""

    name: str
    url: str | None  # None for a corpus built from others
    sha256: str  # of the source after BOM removal and CRLF -> LF; of the built text if built
    bytes: int
    gutenberg: bool  # the source has Gutenberg's header and footer, stripped for training
    description: str
    file: str | None = None  # file name in a mirror folder; None for a built corpus
    parts: tuple[str, ...] = ()  # the corpora a built corpus joins, in order


@functools.cache
def _manifest() -> dict[str, CorpusInfo]:
    text = resources.files("myllm.data").joinpath(MANIFEST_NAME).read_text(encoding="utf-8")
    return {
        name: CorpusInfo(
            name=name,
            url=entry.get("url"),
            sha256=entry["sha256"],
            bytes=entry["bytes"],
            gutenberg=entry["gutenberg"],
            description=entry["description"],
            file=entry.get("file"),
            parts=tuple(entry.get("parts", ())),
        )
        for name, entry in json.loads(text)["corpora"].items()
    }


def list_corpora() -> list[CorpusInfo]:
    """Every known corpus, in manifest order (the default, the books, then combined ones)."""
    return list(_manifest().values())


def corpus_info(name: str) -> CorpusInfo:
    """The manifest entry for `name`, or a UserError listing the known names."""
    corpora = _manifest()
    if name not in corpora:
        raise UserError(
            f"unknown corpus {name!r}: choose one of {', '.join(corpora)} (see `myllm data list`)"
        )
    return corpora[name]


def default_mirror() -> Path | None:
    """The mirror folder named by MYLLM_DATA_MIRROR, or None when it is unset or empty."""
    value = os.environ.get(MIRROR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def fetch(name: str, dest_dir: Path = Path("data"), mirror: Path | None = None) -> Path:
    """Write the training text of corpus `name` to `<dest_dir>/<name>.txt` and return that path.

    Sources come from `mirror`, else MYLLM_DATA_MIRROR, else their URL; all are sha256-checked.
    """
    info = corpus_info(name)
    path = Path(dest_dir) / f"{name}.txt"
    _write_text(path, corpus_text(info, _resolve_mirror(mirror)))
    return path


def ensure_default_corpus(path: Path, mirror: Path | None = None) -> bool:
    """Fetch tinyshakespeare to `path` when it is missing; True if it fetched.

    Call it only for the trainer's default --data: a missing file the user named is their error.
    """
    path = Path(path)
    if path.exists():
        return False
    _write_text(path, corpus_text(corpus_info(DEFAULT_CORPUS), _resolve_mirror(mirror)))
    return True


def corpus_text(info: CorpusInfo, mirror: Path | None) -> str:
    """The training text of a corpus: its verified source, Gutenberg boilerplate stripped.

    A built corpus joins its parts' training texts with one blank line between them.
    """
    if info.parts:
        texts = [corpus_text(corpus_info(part), mirror).strip("\n") for part in info.parts]
        return "\n\n".join(texts) + "\n"
    text = _read_source(info, mirror).decode("utf-8")
    return strip_gutenberg(text) if info.gutenberg else text


def strip_gutenberg(text: str) -> str:
    """The book between the `*** START OF` and `*** END OF` lines, without closing boilerplate."""
    lines = text.split("\n")
    start = _marker_line(lines, _START_MARKER, 0)
    end = _marker_line(lines, _END_MARKER, start + 1)
    body = lines[start + 1 : end]
    closing = next((i for i, line in enumerate(body) if _CLOSING_MATTER.match(line)), len(body))
    body = body[:closing]
    first = next((i for i, line in enumerate(body) if line.strip()), len(body))
    last = next((i for i in reversed(range(len(body))) if body[i].strip()), -1)
    if first > last:
        raise UserError("the Gutenberg text has nothing between its START and END markers")
    return "\n".join(body[first : last + 1]) + "\n"


def _marker_line(lines: list[str], marker: str, begin: int) -> int:
    for index in range(begin, len(lines)):
        if lines[index].lstrip().startswith(marker):
            return index
    raise UserError(
        f"no line starting with {marker!r}: this is not a Project Gutenberg text, use it as it is"
    )


def _resolve_mirror(mirror: Path | None) -> Path | None:
    return Path(mirror).expanduser() if mirror is not None else default_mirror()


def _read_source(info: CorpusInfo, mirror: Path | None) -> bytes:
    """The source bytes of `info`, normalized (no BOM, LF) and checked against its sha256."""
    if mirror is not None:
        raw, source = _read_mirror(info, mirror), f"mirror file {mirror / info.file}"
    else:
        raw, source = _download(info), info.url
    # Gutenberg serves a BOM and sometimes CRLF; the pinned hash is of the plain LF text.
    data = raw.removeprefix(_BYTE_ORDER_MARK).replace(b"\r\n", b"\n")
    actual = hashlib.sha256(data).hexdigest()
    if actual != info.sha256:
        raise UserError(
            f"sha256 mismatch for {info.name} from {source}: expected {info.sha256}, got {actual} "
            f"({len(data)} bytes, expected {info.bytes}); it is damaged or another revision: "
            f"pass --mirror DIR (or set {MIRROR_ENV}) to a folder holding the pinned {info.file}"
        )
    return data


def _read_mirror(info: CorpusInfo, mirror: Path) -> bytes:
    check_directory(
        mirror, "mirror folder", f"pass --mirror DIR (or set {MIRROR_ENV}) to a folder holding "
        f"{info.file}",
    )  # fmt: skip
    path = mirror / info.file
    if not path.exists():
        raise UserError(
            f"mirror folder {mirror} has no {info.file} (corpus {info.name}): copy it there "
            f"from {info.url} or pass another --mirror DIR"
        )
    check_file(path, "mirror file", f"copy {info.file} there from {info.url}")
    return path.read_bytes()


def _download(info: CorpusInfo) -> bytes:
    try:
        with urllib.request.urlopen(info.url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            return response.read()
    except (OSError, http.client.HTTPException) as error:  # URLError and timeouts are OSErrors
        reason = getattr(error, "reason", None) or error
        raise UserError(
            f"could not download {info.name} from {info.url} ({reason}): pass --mirror DIR "
            f"or set {MIRROR_ENV} to a folder holding {info.file}"
        ) from None


def _write_text(path: Path, text: str) -> None:
    # Bytes, not write_text: the file is LF UTF-8 on every platform.
    atomic_write(path, lambda temp: temp.write_bytes(text.encode("utf-8")))
