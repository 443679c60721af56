"""One retraining worker at a time, across app restarts: start, watch, cancel, clean up.

The worker (`python -m retraining`) is a separate process. Its lifecycle rests on three things in
the data folder (and it reads its pictures from a fourth, `retraining.labels`):

- `retrain.lock`: an exclusive `flock` held by the worker for its whole life. The app takes the lock,
  starts the worker with the locked descriptor (the lock then belongs to both), and closes its own copy,
  so there is no moment where two workers could both believe they are alone. The kernel drops the lock
  when the worker dies, however it dies, so "lock free" means "no worker", even after an app restart.
- `retrain_status.json`: state, progress, message, `run_id`, `pid`, who and when. Every write names its
  run; a write for another run than the one recorded is refused (`write_status`), so a stale worker can
  never overwrite a newer run's status, and the app marks a run failed or cancelled only for that run.
- `models/.retrain-<run_id>/`: the worker's staging folder. It is renamed into `models/v<N>` only when
  complete; a cancelled or crashed worker's folder is removed (by the worker itself, or, if it was
  killed outright, by whoever next finds the lock free).

The worker stops when the app that started it dies (it watches its parent pid), removing its staging
folder; a restarted app finds the lock free and reports the run as stopped. While a worker runs, any app
process on the same data folder (a restart that raced the old worker's exit, or a second instance)
shows the worker's real progress from the status file and can cancel it by the pid recorded there.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from inference.model_card import PROJECT_ROOT
from retraining.labels import LABELS_NAME, write_labels
from retraining.versions import STAGING_PREFIX  # the worker names its staging folder with it

LOCK_NAME = "retrain.lock"
STATUS_NAME = "retrain_status.json"
TERMINAL_STATES = ("done", "failed", "cancelled", "stopped")


class RetrainBusyError(ValueError):
    """Another retraining run holds the lock."""


# -- lock -----------------------------------------------------------------------------------------
def try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive flock on `path`, or None if someone else holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def lock_is_held(path: Path) -> bool:
    fd = try_lock(path)
    if fd is None:
        return True
    os.close(fd)  # closing releases the probe's lock
    return False


# -- status ---------------------------------------------------------------------------------------
def read_status(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.exists() else {"state": "idle"}
    except (ValueError, OSError):
        return {"state": "idle"}


@contextmanager
def _status_guard(path: Path):
    """Serialises read-compare-write of the status file between processes (a tiny side lock)."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_status(path: Path, run_id: str, state: str, progress: float, message: str, new_run: bool = False,
                 **extra) -> bool:
    """Atomically record `run_id`'s status. Refused (False) when the file names another run, unless
    `new_run` (only the holder of the worker lock starts a run). Fields of the run are kept across writes."""
    with _status_guard(path):
        current = read_status(path)
        if not new_run and current.get("run_id") not in (None, run_id):
            return False
        record = {} if new_run else {k: v for k, v in current.items() if k not in ("state", "progress", "message")}
        record.update(extra, run_id=run_id, state=state, progress=round(float(progress), 4), message=message,
                      updated=time.time())
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)
        return True


def remove_staging(models_dir: Path, run_id: str | None = None) -> list[Path]:
    """Remove the staging folder of `run_id` (or of every run); call only when no worker holds the lock."""
    removed = []
    for path in Path(models_dir).glob(f"{STAGING_PREFIX}{run_id or ''}*"):
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


# -- worker side ----------------------------------------------------------------------------------
class WorkerCancelled(BaseException):
    """Raised in the worker's main thread by SIGTERM (state "cancelled") or when its app died ("stopped")."""

    def __init__(self, state: str, message: str):
        super().__init__(message)
        self.state = state


def hold_worker_lock(folder: Path, inherited_fd: int | None) -> int:
    """The worker's lock: the descriptor the app passed (already locked), or taken here (CLI use)."""
    if inherited_fd is not None:
        return inherited_fd
    fd = try_lock(Path(folder) / LOCK_NAME)
    if fd is None:
        status = read_status(Path(folder) / STATUS_NAME)
        raise RetrainBusyError(f"A retraining run is already in progress (run {status.get('run_id', '?')}, "
                               f"pid {status.get('pid', '?')}).")
    return fd


def install_cancellation(parent_pid: int | None, poll_seconds: float = 0.5) -> None:
    """SIGTERM raises WorkerCancelled in the main thread; if `parent_pid` is given, the worker also
    cancels itself once that process is gone (its parent pid changes when the app dies)."""
    def on_signal(signum, frame):
        if signum == signal.SIGUSR1:
            raise WorkerCancelled("stopped", "stopped: the app that started it exited")
        raise WorkerCancelled("cancelled", "cancelled by an admin")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGUSR1, on_signal)
    if not parent_pid:
        return

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os.kill(os.getpid(), signal.SIGUSR1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


@contextmanager
def signals_deferred():
    """Cancellation is held off while the new version is committed and activated (both steps or
    neither) and ignored afterwards: the run is then finished, a late cancel changes nothing."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGUSR1})
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGUSR1})


# -- app side -------------------------------------------------------------------------------------
class RetrainJobs:
    """What the app uses: start a worker, report its status, cancel it, wait for it."""

    def __init__(self, folder: Path, models_dir: Path):
        self.folder = Path(folder)
        self.models_dir = Path(models_dir)
        self.lock_path = self.folder / LOCK_NAME
        self.status_path = self.folder / STATUS_NAME
        self._process: subprocess.Popen | None = None
        self._mutex = threading.Lock()
        self.reconcile()

    def reconcile(self) -> dict:
        """If the status says running but no worker holds the lock, the run stopped: say so, clean up."""
        status = read_status(self.status_path)
        if status.get("state") in TERMINAL_STATES or status.get("state") == "idle":
            return status
        if lock_is_held(self.lock_path):
            return status  # a live worker (ours or another app process's): its own status is the truth
        remove_staging(self.models_dir, status.get("run_id"))
        write_status(self.status_path, status.get("run_id", ""), "failed", status.get("progress", 0.0),
                     f"{status.get('message', '')} (the worker stopped before finishing)")
        return read_status(self.status_path)

    def status(self) -> dict:
        self._reap()
        status = self.reconcile()
        status["running"] = status.get("state") == "running" and lock_is_held(self.lock_path)
        return status

    def start(self, username: str, labels: dict[str, str], args: list[str]) -> str:
        """Start `python -m retraining <args>` on `labels` ({picture path relative to the data folder:
        "REAL" | "FAKE"}) holding the lock; returns the run id.
        RetrainBusyError (with who and since when) if a run is in progress."""
        with self._mutex:
            fd = try_lock(self.lock_path)
            if fd is None:
                status = read_status(self.status_path)
                raise RetrainBusyError(
                    f"A retraining run is already in progress (run {status.get('run_id', '?')} by "
                    f"{status.get('by') or '?'}, {status.get('progress', 0) * 100:.0f} %): wait for it or cancel it.")
            try:
                run_id = uuid.uuid4().hex[:12]
                write_labels(self.folder / LABELS_NAME, labels)  # under the lock: no other start writes it now
                write_status(self.status_path, run_id, "running", 0.0, "starting", new_run=True, by=username,
                             started=time.time(), pid=None)
                cmd = [sys.executable, "-m", "retraining", "--data-dir", str(self.folder), "--by", username,
                       "--status", str(self.status_path), "--run-id", run_id, "--lock-fd", str(fd),
                       "--parent-pid", str(os.getpid()), *args]
                env = {**os.environ, "PYTHONUNBUFFERED": "1"}
                with (self.folder / "retrain.log").open("a") as log:
                    self._process = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                                     pass_fds=(fd,), start_new_session=True, env=env)
                write_status(self.status_path, run_id, "running", 0.0, "starting", pid=self._process.pid)
                return run_id
            finally:
                os.close(fd)  # the worker's copy keeps the lock

    def cancel(self, timeout: float = 20.0) -> bool:
        """Stop the running worker (SIGTERM, then SIGKILL after `timeout`); False if none is running."""
        with self._mutex:
            status = read_status(self.status_path)
            pid, run_id = status.get("pid"), status.get("run_id")
            if not pid or not lock_is_held(self.lock_path):
                return False
            self._signal(int(pid), signal.SIGTERM)
            deadline = time.time() + timeout
            while lock_is_held(self.lock_path) and time.time() < deadline:
                self._reap()
                time.sleep(0.1)
            if lock_is_held(self.lock_path):
                self._signal(int(pid), signal.SIGKILL)
                while lock_is_held(self.lock_path):
                    self._reap()
                    time.sleep(0.05)
            self._reap()
            remove_staging(self.models_dir, run_id)
            current = read_status(self.status_path)
            if current.get("run_id") == run_id and current.get("state") not in TERMINAL_STATES:  # killed outright
                write_status(self.status_path, run_id, "cancelled", 0.0, "cancelled by an admin")
            return read_status(self.status_path).get("state") == "cancelled"  # False: it had just finished

    def wait(self, timeout: float | None = None) -> dict:
        """Block until no worker holds the lock (or `timeout`); returns the status."""
        deadline = None if timeout is None else time.time() + timeout
        while lock_is_held(self.lock_path) and (deadline is None or time.time() < deadline):
            self._reap()
            time.sleep(0.2)
        return self.status()

    def _signal(self, pid: int, signum: int) -> None:
        try:
            os.killpg(pid, signum)  # the worker leads its own process group (start_new_session)
        except ProcessLookupError:
            try:
                os.kill(pid, signum)  # a worker started by hand from a shell: not a group leader
            except ProcessLookupError:
                pass

    def _reap(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            self._process = None
