"""Fetching a GroupLens zip: download with progress and MD5 check, unpack once."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from pipelines.ingest.release import IngestError

log = logging.getLogger(__name__)


_DOWNLOAD_CHUNK = 1 << 20


_UNPACK_MARKER = ".nextwatch-unpacked"


_MD5_RE = re.compile(r"\b([0-9a-fA-F]{32})\b")


def normalize_md5(md5: str) -> str:
    """Accept a bare hex digest or the content of a GroupLens ``.md5`` file."""
    m = _MD5_RE.search(md5 or "")
    if not m:
        raise IngestError(f"not an MD5 digest: {md5!r} (expected 32 hex digits)")
    return m.group(1).lower()


def file_md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_DOWNLOAD_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest_dir: Path, *, md5: str | None = None, progress: bool = True) -> Path:
    """Download `url` into `dest_dir` (streaming, with a tqdm bar) and return the file's path.

    An existing complete file is reused when it verifies (same MD5 when `md5` is given; a
    readable zip otherwise). On an MD5 mismatch the downloaded file is deleted and
    :class:`IngestError` raised.
    """
    import httpx
    from tqdm.auto import tqdm

    expected = normalize_md5(md5) if md5 else None
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = unquote(urlparse(url).path).rstrip("/").rsplit("/", 1)[-1] or "download.zip"
    dest = dest_dir / name

    if dest.is_file():
        if expected is None and zipfile.is_zipfile(dest):
            log.info("reusing %s (no MD5 given)", dest)
            return dest
        if expected is not None and file_md5(dest) == expected:
            log.info("reusing %s (MD5 verified)", dest)
            return dest
        log.info("existing %s does not verify: downloading again", dest)

    part = dest.with_name(dest.name + ".part")
    h = hashlib.md5()
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=httpx.Timeout(30.0, read=120.0)) as resp:
            if resp.status_code >= 400:
                raise IngestError(f"download of {url} failed: HTTP {resp.status_code} {resp.reason_phrase}")
            total = int(resp.headers.get("content-length") or 0) or None
            with (
                open(part, "wb") as f,
                tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, disable=not progress) as bar,
            ):
                for chunk in resp.iter_bytes(_DOWNLOAD_CHUNK):
                    f.write(chunk)
                    h.update(chunk)
                    bar.update(resp.num_bytes_downloaded - bar.n)  # wire bytes, like content-length
            if total is not None and resp.num_bytes_downloaded != total:
                raise IngestError(f"download of {url} truncated: got {resp.num_bytes_downloaded} of {total} bytes")
    except httpx.HTTPError as e:
        part.unlink(missing_ok=True)
        raise IngestError(f"download of {url} failed: {e}") from e
    except BaseException:
        part.unlink(missing_ok=True)
        raise

    actual = h.hexdigest()
    if expected is not None and actual != expected:
        part.unlink(missing_ok=True)
        dest.unlink(missing_ok=True)
        raise IngestError(f"MD5 mismatch for {url}: expected {expected}, got {actual}; the download was deleted")
    os.replace(part, dest)
    return dest


def unpack_zip(zip_path: Path, dest_root: Path) -> Path:
    """Unpack `zip_path` into ``dest_root/<zip stem>/`` (atomically; skipped when already done)."""
    zip_path = Path(zip_path)
    dest_root = Path(dest_root)
    dest_root.mkdir(parents=True, exist_ok=True)
    target = dest_root / zip_path.stem
    st = zip_path.stat()
    stamp = f"{zip_path.resolve()}\n{st.st_size}\n{st.st_mtime_ns}\n"
    marker = target / _UNPACK_MARKER
    if marker.is_file() and marker.read_text() == stamp:
        return target
    tmp = Path(tempfile.mkdtemp(prefix=f".{zip_path.stem}.", suffix=".tmp", dir=dest_root))
    try:
        try:
            with zipfile.ZipFile(zip_path) as zf:
                for member in zf.namelist():  # extractall sanitizes too; be explicit about it
                    p = Path(member)
                    if p.is_absolute() or ".." in p.parts:
                        raise IngestError(f"{zip_path}: unsafe member path {member!r}")
                zf.extractall(tmp)
        except zipfile.BadZipFile as e:
            raise IngestError(f"{zip_path} is not a valid zip file: {e}") from e
        (tmp / _UNPACK_MARKER).write_text(stamp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
