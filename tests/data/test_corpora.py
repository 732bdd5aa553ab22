"""Corpus fetching: pinned sha256, Gutenberg stripping, mirrors and clear failures."""

from __future__ import annotations

import hashlib
import io
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from myllm.data import corpora
from myllm.data.corpora import (
    MIRROR_ENV,
    corpus_info,
    default_mirror,
    ensure_default_corpus,
    fetch,
    list_corpora,
    strip_gutenberg,
)
from myllm.errors import UserError

# CI runs in a fresh clone with shared/ beside it: <root>/main/tests/ and <root>/shared/data/.
MIRROR = Path(__file__).resolve().parents[3] / "shared" / "data"
BOOKS = ["alice_in_wonderland", "pride_and_prejudice", "shakespeare_complete", "sherlock_holmes"]
# The first and last words of each book's text, once Gutenberg's header and footer are gone.
BOOK_EDGES = {
    "alice_in_wonderland": ("[Illustration]", "THE END\n"),
    "pride_and_prejudice": ("[Illustration:", "TOOKS COURT, CHANCERY LANE, LONDON.\n"),
    "shakespeare_complete": ("The Complete Works of William Shakespeare", "FINIS\n"),
    "sherlock_holmes": ("The Adventures of Sherlock Holmes", "considerable success.\n"),
}


@pytest.fixture(autouse=True)
def no_environment_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)


@pytest.fixture
def mirror() -> Path:
    if not (MIRROR / "SOURCES.md").is_file():
        pytest.skip(f"offline data mirror {MIRROR} is absent (expected shared/ beside the repo)")
    return MIRROR


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No network: every download attempt is recorded and fails as urllib would."""
    attempts: list[str] = []

    def refuse(url: str, timeout: float) -> None:
        attempts.append(url)
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return attempts


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_lists_every_corpus_in_order():
    names = [info.name for info in list_corpora()]
    assert names == ["tinyshakespeare", *BOOKS, "combined_literature"]
    assert corpus_info("combined_literature").parts == tuple(BOOKS)
    assert all(corpus_info(book).gutenberg for book in BOOKS)
    assert not corpus_info("tinyshakespeare").gutenberg


def test_manifest_matches_the_mirror_sources(mirror: Path):
    sources = (mirror / "SOURCES.md").read_text(encoding="utf-8")
    row = r"^\| (\S+\.txt) \| (\d+) \| \d+ \| ([0-9a-f]{64}) \|$"
    table = re.findall(row, sources, re.MULTILINE)
    pinned = {info.file: (info.bytes, info.sha256) for info in list_corpora() if info.file}
    assert pinned == {file: (int(size), sha) for file, size, sha in table}


def test_tinyshakespeare_is_fetched_unchanged(mirror: Path, tmp_path: Path, offline: list[str]):
    path = fetch("tinyshakespeare", dest_dir=tmp_path, mirror=mirror)
    assert path == tmp_path / "tinyshakespeare.txt"
    assert sha256_of(path) == corpus_info("tinyshakespeare").sha256
    assert path.read_text(encoding="utf-8").startswith("First Citizen:\n")
    assert offline == []


@pytest.mark.parametrize("book", BOOKS)
def test_books_are_fetched_without_gutenberg_boilerplate(mirror: Path, tmp_path: Path, book: str):
    text = fetch(book, dest_dir=tmp_path, mirror=mirror).read_text(encoding="utf-8")
    first_words, last_words = BOOK_EDGES[book]
    assert text.lstrip().startswith(first_words)
    assert text.endswith(last_words)
    assert "*** START OF" not in text and "*** END OF" not in text
    assert "gutenberg" not in text.lower()
    # Header and footer are a few percent of each file (11% of the short Alice).
    assert 0.85 * corpus_info(book).bytes < len(text.encode()) < corpus_info(book).bytes


def test_combined_literature_joins_the_four_books(mirror: Path, tmp_path: Path):
    combined = fetch("combined_literature", dest_dir=tmp_path, mirror=mirror)
    info = corpus_info("combined_literature")
    assert combined == tmp_path / "combined_literature.txt"
    assert sha256_of(combined) == info.sha256
    assert combined.stat().st_size == info.bytes
    books = [fetch(book, tmp_path, mirror).read_text(encoding="utf-8") for book in BOOKS]
    expected = "\n\n".join(text.strip("\n") for text in books) + "\n"
    assert combined.read_text(encoding="utf-8") == expected


def test_corrupted_mirror_file_is_refused(mirror: Path, tmp_path: Path):
    bad_mirror = tmp_path / "mirror"
    bad_mirror.mkdir()
    data = bytearray((mirror / "alice_in_wonderland.txt").read_bytes())
    data[5000] ^= 0x01
    (bad_mirror / "alice_in_wonderland.txt").write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256") as raised:
        fetch("alice_in_wonderland", dest_dir=tmp_path / "out", mirror=bad_mirror)
    message = str(raised.value)
    assert corpus_info("alice_in_wonderland").sha256 in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message
    assert "--mirror" in message and "\n" not in message
    assert not (tmp_path / "out" / "alice_in_wonderland.txt").exists()


def test_unknown_corpus_names_the_known_ones(tmp_path: Path):
    with pytest.raises(UserError, match="unknown corpus 'moby_dick'") as raised:
        fetch("moby_dick", dest_dir=tmp_path)
    assert all(info.name in str(raised.value) for info in list_corpora())


def test_no_mirror_and_no_network_suggests_a_mirror(tmp_path: Path, offline: list[str]):
    with pytest.raises(UserError, match="could not download tinyshakespeare") as raised:
        fetch("tinyshakespeare", dest_dir=tmp_path)
    assert "--mirror DIR" in str(raised.value) and MIRROR_ENV in str(raised.value)
    assert offline == [corpus_info("tinyshakespeare").url]
    assert list(tmp_path.iterdir()) == []


def test_missing_mirror_folder_or_file_is_a_user_error(tmp_path: Path, offline: list[str]):
    with pytest.raises(UserError, match="nowhere not found"):
        fetch("sherlock_holmes", dest_dir=tmp_path, mirror=tmp_path / "nowhere")
    with pytest.raises(UserError, match=r"has no sherlock_holmes\.txt"):
        fetch("sherlock_holmes", dest_dir=tmp_path, mirror=tmp_path)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(UserError, match="a_file is a file, not a directory"):
        fetch("sherlock_holmes", dest_dir=tmp_path, mirror=tmp_path / "a_file")
    (tmp_path / "sherlock_holmes.txt").mkdir()
    with pytest.raises(UserError, match=r"sherlock_holmes\.txt is a directory"):
        fetch("sherlock_holmes", dest_dir=tmp_path / "out", mirror=tmp_path)
    assert offline == []


def test_environment_mirror_is_used(
    mirror: Path, tmp_path: Path, offline: list[str], monkeypatch: pytest.MonkeyPatch
):
    assert default_mirror() is None
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    assert default_mirror() == mirror
    path = fetch("sherlock_holmes", dest_dir=tmp_path)
    assert path.read_text(encoding="utf-8").startswith("The Adventures of Sherlock Holmes")
    assert offline == []


def test_download_as_gutenberg_serves_it_verifies(
    mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Gutenberg serves a byte-order mark and CRLF; the pinned hash is of the plain LF text.
    served = b"\xef\xbb\xbf" + (mirror / "sherlock_holmes.txt").read_bytes().replace(b"\n", b"\r\n")
    requested: list[str] = []

    def serve(url: str, timeout: float) -> io.BytesIO:
        requested.append(url)
        return io.BytesIO(served)

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    downloaded = fetch("sherlock_holmes", dest_dir=tmp_path / "downloaded")
    from_mirror = fetch("sherlock_holmes", dest_dir=tmp_path / "mirrored", mirror=mirror)
    assert requested == [corpus_info("sherlock_holmes").url]
    assert downloaded.read_bytes() == from_mirror.read_bytes()


def test_default_corpus_is_fetched_only_when_missing(mirror: Path, tmp_path: Path):
    default_path = tmp_path / "data" / "input.txt"
    assert ensure_default_corpus(default_path, mirror) is True
    assert sha256_of(default_path) == corpus_info("tinyshakespeare").sha256
    default_path.write_text("my own text\n", encoding="utf-8")
    assert ensure_default_corpus(default_path, mirror) is False
    assert default_path.read_text(encoding="utf-8") == "my own text\n"


def test_strip_gutenberg_cuts_markers_and_closing_matter():
    text = (
        "header\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\n\n\nBook line.\n\n"
        "End of Project Gutenberg's X\n\n   *** END OF THE PROJECT GUTENBERG EBOOK X ***\nlicense\n"
    )
    assert strip_gutenberg(text) == "Book line.\n"
    with pytest.raises(UserError, match="not a Project Gutenberg text"):
        strip_gutenberg("just a story\n")


def test_core_module_imports_no_framework():
    source = Path(corpora.__file__).read_text(encoding="utf-8")
    assert not re.search(r"^\s*(import|from)\s+(torch|mlx)\b", source, re.MULTILINE)
