"""Files reach handlers only through Gradio's upload route.

A request names files by path (`{"path": …, "meta": {"_type": "gradio.FileData"}}`). The app is mounted
with `gr.mount_gradio_app` and never launched, so Gradio's own check (`processing_utils._check_allowed`,
which only runs once `blocks.has_launched` is set) did nothing: a visitor could name `/dev/zero` (the
server froze hashing it), another user's profile picture or `/etc/shadow`, and Gradio copied it into its
cache before any handler ran. Two layers now refuse such paths, each enough on its own:

1. Gradio's check, restored (`webapp.server.create_app` sets `has_launched` as `launch()` would): a
   client's path must lie in the upload folder, and the data folder is a blocked path.
2. Our own, `UploadCheckedBlocks`, runs before Gradio touches a path: the path must be one that
   Gradio's upload route created (`blocks.upload_file_set`) or an example file Gradio cached for that
   very input, and must be a regular file (`lstat`: no directory, device, FIFO or symlink). It does not
   depend on Gradio internals staying as they are, and it refuses cache directories and files that are
   in the cache without having been uploaded, which Gradio's folder check lets through. The membership
   test comes first, so a named path outside the set is never even looked at on disk; every refusal
   gives the same sentence, so the answer tells nothing about what exists on the server.
"""
from __future__ import annotations

import os
import stat

import gradio as gr
from gradio_client.utils import is_file_obj_with_meta

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


class UploadCheckedBlocks(gr.Blocks):
    """gr.Blocks that refuses, before preprocessing, any file path a client names but did not upload."""

    async def preprocess_data(self, block_fn, inputs, state, explicit_call: bool = False):
        if not explicit_call:  # explicit calls come from the app's own code, not from a request
            for block, value in zip(block_fn.inputs, inputs):
                created = (self.upload_file_set, block.temp_files, block.keep_in_cache)
                if not all(is_uploaded_file(path, *created) for path in named_paths(value)):
                    raise gr.Error(REFUSED, title="Upload refused")
        return await super().preprocess_data(block_fn, inputs, state, explicit_call)
