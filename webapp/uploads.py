"""Files reach handlers only through Gradio's upload route.

A request names files by path (`{"path": …, "meta": {"_type": "gradio.FileData"}}`). The app is mounted
with `gr.mount_gradio_app` and never launched, so Gradio's own check (`processing_utils._check_allowed`,
which only runs once `blocks.has_launched` is set) did nothing: a visitor could name `/dev/zero` (the
server froze hashing it), another user's profile picture or `/etc/shadow`, and Gradio copied it into its
cache before any handler ran. Two layers now refuse such paths, each enough on its own:

1. Gradio's check, restored (`webapp.server.create_app` sets `has_launched` as `launch()` would): a
   client's path must lie in the upload folder, and the data folder is a blocked path.
2. Our own (`webapp.blocks.AppBlocks` calls `is_uploaded_file`) runs before Gradio touches a path:
   the path must be one that Gradio's upload route created (`blocks.upload_file_set`) or an example
   file Gradio cached for that very input, and a regular file (`lstat`: no directory, device, FIFO or
   symlink). It also refuses cache folders and cached files nobody uploaded, which Gradio's folder
   check lets through. The membership test comes first, so a path outside the set is never looked at
   on disk; every refusal gives the same sentence, so the answer tells nothing about what exists.

Why both: Gradio's check is the one its maintainers keep up, ours does not depend on a flag that only
`launch()` sets. Ours leans on two Gradio 6.31 internals (the `preprocess_data` step and
`upload_file_set`); tests/test_security.py fails if either changes.
"""
from __future__ import annotations

import logging
import os
import stat
import threading
import time
from pathlib import Path

from gradio_client.utils import is_file_obj_with_meta

log = logging.getLogger("cifake.uploads")
REFUSED = ("Files reach this app only by uploading them (the page's upload box, or handle_file(path) in "
           "gradio_client); this one was not uploaded here.")


def named_paths(value) -> list:
    """The `path` of every FileData dict in an event input (nested in lists and dicts)."""
    if is_file_obj_with_meta(value):
        return [value["path"]]
    if isinstance(value, dict):
        return [path for item in value.values() for path in named_paths(item)]
    if isinstance(value, (list, tuple)):
        return [path for item in value for path in named_paths(item)]
    return []


def is_uploaded_file(path, *created: set[str]) -> bool:
    """True for a regular file this server created for an upload (or an example it cached)."""
    if not isinstance(path, str) or not any(os.path.abspath(path) in files for files in created):
        return False
    try:
        mode = os.lstat(path).st_mode  # lstat opens nothing and does not follow a symlink
    except OSError:
        return False
    return stat.S_ISREG(mode)


# -- keeping the upload cache under its size ---------------------------------------------------------------
CACHE_SWEEP_SECONDS = 30  # how often the cache size is measured


def sweep_uploads(folder: str | Path, max_bytes: int, uploads: set[str]) -> int:
    """Delete the oldest uploaded files until the whole cache holds at most `max_bytes`; returns bytes freed.

    Only uploads go (examples and the app's own results stay). Their entries stay in `uploads`: a set
    that Gradio's hourly sweep iterates in another thread must not change size under it, and a stale
    entry only makes `is_uploaded_file` look at a missing file and refuse it.
    """
    total, candidates = 0, []
    for path in Path(folder).rglob("*"):
        try:
            info = path.lstat()
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            total += info.st_size
            if str(path) in uploads:
                candidates.append((info.st_mtime, info.st_size, path))
    freed = 0
    for _, size, path in sorted(candidates):
        if total - freed <= max_bytes:
            break
        try:
            path.unlink()
        except OSError:
            continue
        freed += size
    return freed


def keep_cache_under(folder: str | Path, max_bytes: int, uploads: set[str]) -> threading.Thread:
    """A daemon thread that sweeps the cache every CACHE_SWEEP_SECONDS."""
    def run():
        while True:
            time.sleep(CACHE_SWEEP_SECONDS)
            try:
                freed = sweep_uploads(folder, max_bytes, uploads)
            except Exception:  # noqa: BLE001 - the next round tries again; the log says why
                log.exception("sweeping the upload cache failed")
                continue
            if freed:
                log.warning("upload cache over %d MB: deleted %.1f MB of the oldest uploads", max_bytes >> 20,
                            freed / 2**20)

    thread = threading.Thread(target=run, name="upload-cache-sweep", daemon=True)
    thread.start()
    return thread
