"""The app's gr.Blocks: what Gradio does with a request before a handler runs, made safe.

- File paths a request names are refused unless Gradio's upload route created them (`webapp.uploads`).
- A request with too few inputs gets a short message: Gradio's own quotes every value it received, so a
  client's body went whole into the log and back to the client.
"""
from __future__ import annotations

import gradio as gr

from webapp.uploads import REFUSED, is_uploaded_file, named_paths


class AppBlocks(gr.Blocks):
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
