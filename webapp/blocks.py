"""The app's gr.Blocks: what Gradio does with a request before a handler runs, made safe.

- File paths a request names are refused unless Gradio's upload route created them (`webapp.uploads`).
- A request with too few inputs gets a short message: Gradio's own quotes every value it received, so a
  client's body went whole into the log and back to the client.
- A refusal (`gr.Error`: "Please sign in.", "not a picture") goes to the client and, at INFO, as one
  line to the log; Gradio would print a traceback for each.
- An unexpected exception reaches the client as a plain sentence with an error id; the log gets the id,
  the exception's type, its first 300 characters and the traceback (raw texts like "Python int too large
  to convert to SQLite INTEGER" told clients about the internals; a message may quote request values).
"""
from __future__ import annotations

import logging
import secrets
import traceback

import gradio as gr
from gradio.exceptions import AppError

from webapp.uploads import REFUSED, is_uploaded_file, named_paths


log = logging.getLogger("cifake.errors")


class AppBlocks(gr.Blocks):
    async def process_api(self, *args, **kwargs):
        try:
            return await super().process_api(*args, **kwargs)
        except AppError as refusal:  # gr.Error and kin: sentences written for the user, answers and not faults:
            refusal.print_exception = False  # Gradio would print a traceback for each ("Please sign in.")
            log.info("refused: %s: %.200s", refusal.title, refusal.message)
            raise
        except Exception as err:
            error_id = secrets.token_hex(4)
            log.error("error %s: %s: %.300s\n%s", error_id, type(err).__name__, err,
                      "".join(traceback.format_tb(err.__traceback__)))
            raise gr.Error(f"Something went wrong on our side (error id {error_id}). Try again; if it keeps "
                           "happening, tell us the id on the Contact page.", title="Error",
                           print_exception=False) from None

    async def preprocess_data(self, block_fn, inputs, state, explicit_call: bool = False):
        if not explicit_call:  # explicit calls come from the app's own code, not from a request
            for block, value in zip(block_fn.inputs, inputs):
                created = (self.upload_file_set, block.temp_files, block.keep_in_cache)
                if not all(is_uploaded_file(path, *created) for path in named_paths(value)):
                    raise gr.Error(REFUSED, title="Upload refused", print_exception=False)
        return await super().preprocess_data(block_fn, inputs, state, explicit_call)

    def validate_inputs(self, block_fn, inputs):
        if len(inputs) < len(block_fn.inputs):
            raise gr.Error(f"This event takes {len(block_fn.inputs)} inputs; the request sent {len(inputs)}.",
                           print_exception=False)
