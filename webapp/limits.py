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


class ByteBudget:
    """Bytes per key within a sliding window (visitors' uploads per address); thread-safe."""

    def __init__(self, limit_bytes: int, window: float):
        self.limit_bytes = limit_bytes
        self.window = window
        self._charges: dict[str, deque] = defaultdict(deque)  # key -> (time, bytes), oldest first
        self._totals: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def charge(self, key: str, size: int, now: float | None = None) -> float:
        """Count `size` bytes for `key`; returns 0 while within the budget, else the seconds until the
        window has room again (the bytes stay counted: a client that keeps sending keeps waiting)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._charges) > 10_000:  # forget idle keys
                for stale in [k for k, v in self._charges.items() if not v or v[-1][0] <= now - self.window]:
                    del self._charges[stale], self._totals[stale]
            charges = self._charges[key]
            while charges and charges[0][0] <= now - self.window:
                self._totals[key] -= charges.popleft()[1]
            charges.append((now, size))
            self._totals[key] += size
            return 0.0 if self._totals[key] <= self.limit_bytes else charges[0][0] + self.window - now
