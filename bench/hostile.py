"""Hostile files a security probe sends, built fast and in memory (shared by `bench.load` and the tests)."""
from __future__ import annotations

import struct
import zlib


def flat_png(width: int, height: int, bits: int = 8) -> bytes:
    """A flat PNG of width x height written with zlib directly (fast, a few hundred KB even at 49
    megapixels): 8-bit RGB or 16-bit grey."""
    colour_type, row = (2, bytes(3 * width)) if bits == 8 else (0, b"\x03\xe8" * width)
    compressor = zlib.compressobj(1)
    body = b"".join(compressor.compress(b"\x00" + row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, bits, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
