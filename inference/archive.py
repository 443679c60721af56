"""Reading pictures out of zip files without trusting the zip: entries are streamed one at a time,
and every limit counts the bytes actually decompressed, not the sizes the archive claims (a forged
size field must not let an entry grow past its cap).

Used by the CLI (`python -m inference`), the app's batch page and the admin uploads.
"""
from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
CHUNK = 1 << 20  # bytes decompressed per read


class ZipLimitError(ValueError):
    """The zip breaks one of the limits or is damaged; the message names the limit and the entry."""


@dataclass(frozen=True)
class ZipLimits:
    max_entries: int = 1000  # picture entries per zip
    max_entry_bytes: int = 50 * 2**20  # decompressed bytes of one entry
    max_total_bytes: int = 500 * 2**20  # decompressed bytes of the whole zip
    max_ratio: float = 200.0  # decompressed / compressed size of one entry (zip bombs)


def picture_entries(archive: zipfile.ZipFile, limits: ZipLimits, name: str = "the zip") -> list[zipfile.ZipInfo]:
    """The picture entries of `archive` in name order; raises ZipLimitError when there are too many."""
    entries = sorted((i for i in archive.infolist() if not i.is_dir() and Path(i.filename).suffix.lower()
                      in IMAGE_SUFFIXES), key=lambda i: i.filename)
    if len(entries) > limits.max_entries:
        raise ZipLimitError(f"{name} holds {len(entries)} pictures; at most {limits.max_entries} are accepted "
                            "per zip. Split it into smaller zips.")
    return entries


def iter_zip_pictures(path: str | Path, limits: ZipLimits = ZipLimits(),
                      name: str | None = None) -> Iterator[tuple[str, bytes]]:
    """Yield (entry name, bytes) for each picture in the zip at `path`, one entry in memory at a time.

    Raises ZipLimitError (a ValueError) naming the limit when the zip holds too many pictures, an entry
    decompresses past `max_entry_bytes` or `max_ratio`, the zip past `max_total_bytes`, or is damaged.
    """
    name = name or Path(path).name
    try:
        with zipfile.ZipFile(path) as archive:
            total = 0
            for info in picture_entries(archive, limits, name):
                data = _read_entry(archive, info, limits, name, limits.max_total_bytes - total)
                total += len(data)
                yield info.filename, data
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as err:
        raise ZipLimitError(f"{name} is damaged or uses an unsupported format ({_short(err)}).") from None


def check_zip(path: str | Path, limits: ZipLimits = ZipLimits(), name: str | None = None) -> int:
    """Stream through the whole zip once (nothing kept); returns the number of pictures or raises."""
    return sum(1 for _ in iter_zip_pictures(path, limits, name))


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: ZipLimits, name: str,
                total_left: int) -> bytes:
    ratio_cap = max(limits.max_ratio * max(info.compress_size, 1), CHUNK)
    parts, size = [], 0
    with archive.open(info) as handle:
        while chunk := handle.read(CHUNK):
            size += len(chunk)
            if size > limits.max_entry_bytes:
                raise ZipLimitError(f"{info.filename} in {name} is larger than {limits.max_entry_bytes // 2**20} MB "
                                    "when unpacked; smaller pictures are accepted.")
            if size > total_left:
                raise ZipLimitError(f"{name} unpacks to more than {limits.max_total_bytes // 2**20} MB in all; "
                                    "split it into smaller zips.")
            if size > ratio_cap:
                raise ZipLimitError(f"{info.filename} in {name} unpacks to over {limits.max_ratio:.0f} times its "
                                    "packed size (a zip bomb?); it was refused.")
            parts.append(chunk)
    return b"".join(parts)


def _short(err: Exception) -> str:
    text = str(err) or type(err).__name__
    return text if len(text) < 120 else text[:117] + "..."
