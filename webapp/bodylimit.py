"""Every request body is bounded before anything buffers it (pure ASGI, in front of Gradio).

A 200 MiB JSON post to `/gradio_api/queue/join` used to cost +1 GB of memory and 12 s, and a visitor
could fill the disk through `/gradio_api/upload`. Now:

- a body over its limit is answered 413 at once when `Content-Length` says so, else as soon as the
  streamed (chunked) bytes pass it; the rest is never read;
- upload requests may carry one file of `CIFAKE_MAX_FILE_MB` (visitors) or `CIFAKE_UPLOAD_REQUEST_MB` in
  all (signed-in users: the browser sends all of a batch's files in one request); MCP tool calls one file
  in base64; every other body (JSON events, forms) at most `FORM_BODY_BYTES`, since files never travel
  in them;
- visitors may send `VISITOR_FILES_PER_REQUEST` files per upload and `CIFAKE_VISITOR_UPLOAD_MB_PER_MINUTE`
  per address (429 with Retry-After beyond it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from fastapi.responses import PlainTextResponse

from webapp.limits import ByteBudget

MIB = 2**20
UPLOAD_ROUTE = "/gradio_api/upload"
MCP_ROUTE = "/gradio_api/mcp"  # with gradio[mcp]: tool calls carry pictures inline, base64 (4/3 of the bytes)
FORM_BODY_BYTES = 1 * MIB  # JSON events and forms: the largest legitimate one (a contact message) is ~20 KB
MULTIPART_HEADROOM = 1 * MIB  # part headers and boundaries around the files of an upload
VISITOR_FILES_PER_REQUEST = 1  # the visitor's pages (Home, Register) take one picture each


@dataclass(frozen=True)
class BodyLimits:
    visitor_upload_bytes: int  # one file and its multipart envelope
    member_upload_bytes: int  # all files of one upload request, for signed-in users
    visitor_bytes_per_minute: int  # uploads per address
    form_bytes: int = FORM_BODY_BYTES
    visitor_files_per_request: int = VISITOR_FILES_PER_REQUEST

    @classmethod
    def from_settings(cls, settings) -> "BodyLimits":
        return cls(visitor_upload_bytes=settings.max_file_mb * MIB + MULTIPART_HEADROOM,
                   member_upload_bytes=settings.upload_request_mb * MIB + MULTIPART_HEADROOM,
                   visitor_bytes_per_minute=settings.visitor_upload_mb_per_minute * MIB)


class RequestRefused(Exception):
    def __init__(self, status: int, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.status, self.retry_after = status, retry_after

    def response(self) -> PlainTextResponse:
        headers = {"Retry-After": str(int(self.retry_after) + 1)} if self.retry_after else None
        return PlainTextResponse(str(self), status_code=self.status, headers=headers)


class BodyLimitMiddleware:
    """`who(scope)` -> (signed in?, client address); asked only for upload requests."""

    def __init__(self, app, limits: BodyLimits, who: Callable[[dict], Awaitable[tuple[bool, str]]]):
        self.app = app
        self.limits = limits
        self.who = who
        self.visitor_uploads = ByteBudget(limits.visitor_bytes_per_minute, 60.0)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            meter = await self._meter(scope)
        except RequestRefused as refusal:
            return await refusal.response()(scope, receive, send)
        refused, started = None, False

        async def metered_receive():
            nonlocal refused
            if refused is not None:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                try:
                    meter(message.get("body", b""))
                except RequestRefused as refusal:
                    refused = refusal
                    if not started:
                        await refusal.response()(scope, receive, send)
                    return {"type": "http.disconnect"}  # the app stops reading; the rest is never received
            return message

        async def guarded_send(message):
            nonlocal started
            if refused is None:
                started = True
                await send(message)

        try:
            await self.app(scope, metered_receive, guarded_send)
        except Exception:
            if refused is None:
                raise  # a refused body's "disconnect" makes the app give up; that is no error

    async def _meter(self, scope) -> Callable[[bytes], None]:
        """Refuses at once what the headers already give away; returns the check for each body chunk."""
        headers = dict(scope.get("headers") or [])
        upload = scope["path"].startswith(UPLOAD_ROUTE) and scope["method"] == "POST"
        signed_in, address = await self.who(scope) if upload else (True, "")
        visitor = upload and not signed_in
        if upload:
            limit = self.limits.visitor_upload_bytes if visitor else self.limits.member_upload_bytes
        elif scope["path"].startswith(MCP_ROUTE):
            limit = self.limits.visitor_upload_bytes * 4 // 3
        else:
            limit = self.limits.form_bytes
        too_large = RequestRefused(413, f"The request is larger than the {limit / MIB:.0f} MB this server "
                                        "accepts" + (" for one upload." if upload else "."))
        declared = headers.get(b"content-length", b"")
        if declared and (not declared.isdigit() or int(declared) > limit):
            raise too_large
        delimiters = _DelimiterCounter(headers.get(b"content-type", b"")) if visitor else None
        received = 0

        def meter(chunk: bytes) -> None:
            nonlocal received
            received += len(chunk)
            if received > limit:
                raise too_large
            if visitor:
                wait = self.visitor_uploads.charge(address, len(chunk))
                if wait > 0:
                    raise RequestRefused(429, "Too many uploads from your address; sign in, or try again in "
                                              f"{wait:.0f} s.", wait)
                if delimiters.count(chunk) > self.limits.visitor_files_per_request + 1:  # + the closing one
                    raise RequestRefused(413, f"Visitors may upload {self.limits.visitor_files_per_request} "
                                              "file at a time; sign in for batches.")

        return meter


class _DelimiterCounter:
    """Counts the `--boundary` delimiters of a multipart body as it streams (one more than its parts)."""

    def __init__(self, content_type: bytes):
        boundary = content_type.partition(b"boundary=")[2].split(b";")[0].strip(b'" ')
        self.delimiter = b"--" + boundary if boundary else None
        self.seen, self._tail = 0, b""

    def count(self, chunk: bytes) -> int:
        if self.delimiter is None:
            return 0
        window = self._tail + chunk
        self.seen += window.count(self.delimiter)
        self._tail = window[-(len(self.delimiter) - 1):] if len(self.delimiter) > 1 else b""
        return self.seen
