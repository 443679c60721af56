"""TensorFlow 2.21 logs from C++ (absl) while it loads, before `absl::InitializeLog()`, straight to file
descriptor 2: `TF_CPP_MIN_LOG_LEVEL`, `GLOG_minloglevel` and `ABSL_MIN_LOG_LEVEL` do not silence those
lines. `native_info_dropped()` sends fd 2 through a pipe while TensorFlow loads and drops just them;
everything else written meanwhile, by any thread, passes on unchanged."""
from __future__ import annotations

import os
import re
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

# absl's INFO records ("I0000 00:00:1796287132.50 15285 port.cc:153] ..."), the continuation line of the CPU
# feature notice, and the notice that logging is not initialised yet
DROPPED = re.compile(rb"^(I\d{4} \d\d:\d\d:|To enable the following instructions: |"
                     rb"WARNING: All log messages before absl::InitializeLog\(\) is called)")
_lock = threading.Lock()


@contextmanager
def native_info_dropped() -> Iterator[None]:
    with _lock:
        sys.stderr.flush()
        saved = os.dup(2)
        read_end, write_end = os.pipe()
        out_fd = os.dup(saved)  # the pump's own copy: `saved` is closed when the block ends
        os.dup2(write_end, 2)
        os.close(write_end)

        def pump():
            with os.fdopen(read_end, "rb") as pipe, os.fdopen(out_fd, "wb", buffering=0) as out:
                for line in pipe:
                    if not DROPPED.match(line):
                        out.write(line)

        thread = threading.Thread(target=pump, name="native-log-filter", daemon=True)
        thread.start()
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)  # the pipe's last write end closes: the pump reads to the end and stops
            os.close(saved)
            thread.join(timeout=5)
