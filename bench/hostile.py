"""What a security probe sends: hostile files built fast and in memory (shared by `bench.load` and the tests),
and the issue-20 attacks on a running app (named server paths, 100 MiB bodies, visitor upload floods)."""
from __future__ import annotations

import json
import select
import socket
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx


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


# -- attacks on the running app (issue 20), each a round a client repeats; outcomes counted per kind ----------
# Every body here is streamed from a generator over one reused block: a 100 MiB attack holds 64 KiB.
MIB = 2**20
BLOCK = bytes(2**16)  # the one block every streamed body repeats
REFUSED_PATH = "not uploaded here"  # webapp.uploads.REFUSED: a named path never reaches a handler
VISITOR_EXTRA = ["Grad-CAM", "predicted class", 0.45]  # the visitor "analyse" event's other inputs


class AttackCounts:
    """Thread-safe tally per attack kind: sent, refused as expected, accepted (must stay 0), other answers."""

    def __init__(self):
        self.kinds: dict[str, dict] = {}
        self._lock = threading.Lock()

    def by_kind(self) -> dict[str, dict]:
        with self._lock:
            return {kind: dict(self.kinds[kind]) for kind in sorted(self.kinds)}

    def add(self, kind: str, outcome: str, note: str = "") -> None:
        with self._lock:
            tally = self.kinds.setdefault(kind, {"sent": 0, "refused": 0, "accepted": 0, "other": 0, "notes": []})
            tally["sent"] += 1
            tally[outcome] = tally.get(outcome, 0) + 1
            if note and outcome in ("accepted", "other") and len(tally["notes"]) < 3:
                tally["notes"].append(note[:200])


def _queue_event(http: httpx.Client, api_name: str, data: list) -> tuple[bool, str]:
    """One event by api_name over /gradio_api/queue/join as a browser sends it; (succeeded?, message)."""
    config = http.get("/config").json()
    dependency = next(d for d in config["dependencies"] if d.get("api_name") == api_name)
    session = uuid.uuid4().hex[:11]
    join = http.post("/gradio_api/queue/join", json={"data": data, "event_data": None, "fn_index": dependency["id"],
                                                     "trigger_id": dependency["targets"][0][0],
                                                     "session_hash": session})
    if join.status_code != 200:
        return False, f"HTTP {join.status_code}: {join.text[:200]}"
    with http.stream("GET", f"/gradio_api/queue/data?session_hash={session}") as stream:
        for line in stream.iter_lines():
            message = json.loads(line[5:]) if line.startswith("data:") else {}
            if message.get("msg") == "process_completed":
                output = message.get("output") or {}
                return bool(message.get("success")), str(output.get("error") or output.get("title") or "")
    return False, "the stream ended without a result"


def named_path_round(visitor: httpx.Client, member: httpx.Client, paths: list[str], counts: AttackCounts) -> None:
    """FileData naming server paths: a visitor's "analyse" and a signed-in "predict" (kind "named_path")."""
    for path in paths:
        for http, event in ((visitor, "analyse"), (member, "predict")):
            named = {"path": path, "meta": {"_type": "gradio.FileData"}}
            try:
                ok, message = _queue_event(http, event, [named] + (VISITOR_EXTRA if event == "analyse" else []))
            except httpx.HTTPError as err:
                counts.add("named_path", "other", f"{event} {path}: {err!r}")
                continue
            outcome = "accepted" if ok else "refused" if REFUSED_PATH in message else "other"
            counts.add("named_path", outcome, f"{event} {path}: {message}")


def _chunked(parts: Iterator[bytes]) -> Iterator[bytes]:
    for part in parts:
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
    yield b"0\r\n\r\n"


def post_streamed(url: str, path: str, parts: Iterator[bytes], length: int | None, content_type: str,
                  local_address: str) -> int | None:
    """POST the body `parts` yields over a raw socket (Content-Length `length`, or chunked when None),
    stopping as soon as the server answers. Returns the status code, or None when no answer came."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n{framing}\r\n"
            "Connection: close\r\n\r\n").encode()
    answer = b""
    with socket.create_connection((host, port), timeout=60, source_address=(local_address, 0)) as sock:
        sock.sendall(head)
        for part in _chunked(parts) if length is None else parts:
            if select.select([sock], [], [], 0)[0]:
                break  # answered before the body ended: a refusal
            try:
                sock.sendall(part)
            except OSError:  # closed after answering
                break
        try:
            answer = sock.recv(4096)
        except OSError:
            pass
    status = answer.split(b"\r\n")[0].split(b" ")
    return int(status[1]) if len(status) > 1 and status[1].isdigit() else None


def zeros(total: int) -> Iterator[bytes]:
    """`total` zero bytes as a stream of the one BLOCK (the last one cut)."""
    for start in range(0, total, len(BLOCK)):
        yield BLOCK if total - start >= len(BLOCK) else BLOCK[: total - start]


def multipart(files: list[tuple[str, int]], boundary: str = "b0undary") -> tuple[Iterator[bytes], int, str]:
    """A streamed multipart upload of zero-filled files [(name, size)]: (parts, length, content type)."""
    heads = [(f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
              "Content-Type: image/jpeg\r\n\r\n").encode() for name, _ in files]
    tail = f"--{boundary}--\r\n".encode()
    length = sum(len(h) + size + 2 for h, (_, size) in zip(heads, files)) + len(tail)

    def parts():
        for head, (_, size) in zip(heads, files):
            yield head
            yield from zeros(size)
            yield b"\r\n"
        yield tail

    return parts(), length, f"multipart/form-data; boundary={boundary}"


def huge_body_round(url: str, counts: AttackCounts, address: str, size: int = 100 * MIB) -> None:
    """100 MiB bodies, with Content-Length and chunked, to queue/join and (as a visitor) upload; 413 expected
    (429 counts as refused too: a visitor's chunked upload also spends its address's upload budget)."""
    for chunked in (False, True):
        framing = "chunked" if chunked else "content_length"
        status = post_streamed(url, "/gradio_api/queue/join", zeros(size), None if chunked else size,
                               "application/json", address)
        counts.add(f"huge_body_join_{framing}", _outcome(status, (413,)), f"HTTP {status}")
        parts, length, content_type = multipart([("big.jpg", size)])
        status = post_streamed(url, "/gradio_api/upload", parts, None if chunked else length, content_type, address)
        counts.add(f"huge_body_upload_{framing}", _outcome(status, (413, 429)), f"HTTP {status}")


def _outcome(status: int | None, refusals: tuple[int, ...]) -> str:
    if status in refusals:
        return "refused"
    return "accepted" if status is not None and 200 <= status < 300 else "other"


def many_files_round(url: str, counts: AttackCounts, address: str, files: int = 30) -> None:
    """One visitor upload of `files` small files (the page takes one); 413 expected."""
    parts, length, content_type = multipart([(f"p{i}.jpg", 1000) for i in range(files)])
    status = post_streamed(url, "/gradio_api/upload", parts, length, content_type, address)
    counts.add("upload_many_files", _outcome(status, (413,)), f"HTTP {status}")


class UploadFlood:
    """A visitor address uploading `file_mb` files back to back. Uploads within the per-minute budget are
    allowed (counted as within_budget); refused ones are 429/413; `accepted` counts uploads the server let
    through although the address's accepted bytes of the last minute were already over the budget."""

    def __init__(self, url: str, counts: AttackCounts, address: str, budget_mb: int, file_mb: int = 4):
        self.url, self.counts, self.address = url, counts, address
        self.budget, self.size = budget_mb * MIB, file_mb * MIB
        self.accepted_at: list[float] = []  # times of accepted uploads (each `size` bytes)

    def round(self) -> None:
        parts, length, content_type = multipart([("flood.jpg", self.size)])
        status = post_streamed(self.url, "/gradio_api/upload", parts, length, content_type, self.address)
        now = time.monotonic()
        self.accepted_at = [t for t in self.accepted_at if t > now - 60]
        outcome = _outcome(status, (413, 429))
        if outcome == "accepted":
            self.accepted_at.append(now)
            if len(self.accepted_at) * self.size <= self.budget:
                outcome = "within_budget"
        self.counts.add("upload_rate_flood", outcome, f"HTTP {status}")


def repeat_until(stop: threading.Event, round_once, pause: float = 0.2) -> None:
    """Run `round_once` at least once and until `stop` is set (a failing round is counted by itself)."""
    while True:
        round_once()
        if stop.wait(pause):
            return
