"""Per-address rate limits kept in memory (one app process): a sliding window of recent events."""
from __future__ import annotations

import threading
import time
from collections import defaultdict, deque


class RateLimiter:
    def __init__(self, limit: int, window: float):
        self.limit = limit  # events allowed per key ...
        self.window = window  # ... within this many seconds
        self._events: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def wait_time(self, key: str, now: float | None = None, record: bool = True) -> float:
        """Record one event for `key` and return 0, or return the seconds to wait (nothing recorded).

        record=False only asks (for limits that count successes, recorded with `record`)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            events = self._events[key]
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return events[0] + self.window - now
            if record:
                events.append(now)
            if len(self._events) > 10_000:  # forget idle keys
                for stale in [k for k, v in self._events.items() if not v]:
                    del self._events[stale]
            return 0.0

    def record(self, key: str, now: float | None = None) -> None:
        with self._lock:
            self._events[key].append(time.monotonic() if now is None else now)
