"""Load test of the real app against a bare Gradio app, in the same run on the same machine.

    python -m bench.load                        # 50 clients x 20 /predict each, hostile uploads mixed in
    python -m bench.load --clients 20 --requests 15 --no-hostile

Both servers are started here: `python app.py` (temporary data folder, a signed-in user) and a bare
Gradio app with Gradio's own `auth=`, the same queue settings and a file upload whose handler only reads
the file. Normal clients send the CIFAKE example pictures to `/predict`; hostile clients meanwhile send
49-megapixel PNGs (8- and 16-bit), zip bombs and forged zips to `/batch`, text files named .jpg, and wrong
passwords; and the issue-20 attacks (`bench.hostile`): FileData naming server paths (`/dev/zero`,
`/etc/passwd`, the data folder's secret key, a directory) from a visitor and a signed-in client,
100 MiB bodies (Content-Length and chunked) to queue/join and upload, a visitor upload of 30 files, and
a visitor address uploading back to back past its per-minute budget. Reported: requests/s and p50/p95
per server, the ratio app/bare, errors among normal requests, each attack kind's sent / refused /
accepted (must be 0) / other answers, the app's peak memory over its idle baseline, and `/predict` p50
idle vs during a flood of wrong sign-ins. Results: bench/results/load.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import httpx

from bench.hostile import AttackCounts, UploadFlood, flat_png, huge_body_round, many_files_round, named_path_round, \
    repeat_until

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((PROJECT_ROOT / "examples").glob("*.jpg"))
USER = ("loaduser", "load-password-123")
ATTACKER_ADDRESS = "127.0.0.2"  # wrong passwords come from here; the normal clients sign in from 127.0.0.1
BODY_ADDRESS, FILES_ADDRESS, FLOOD_ADDRESS = "127.0.0.3", "127.0.0.4", "127.0.0.5"  # one upload budget each
VISITOR_UPLOAD_MB = 60  # CIFAKE_VISITOR_UPLOAD_MB_PER_MINUTE given to the app (its default)
QUEUE_SIZE, CONCURRENCY = 64, 4  # the app's defaults (CIFAKE_QUEUE_SIZE, CIFAKE_CLASSIFY_CONCURRENCY)


# -- the bare baseline app ----------------------------------------------------------------------------
def serve_bare(port: int) -> None:
    import gradio as gr

    def read_file(image) -> str:
        with open(image, "rb") as handle:
            return str(len(handle.read()))

    with gr.Blocks() as demo:
        image, size, button = gr.File(type="filepath"), gr.Textbox(), gr.Button()
        button.click(read_file, image, size, api_name="predict", concurrency_limit=CONCURRENCY)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=2)
    demo.launch(server_name="127.0.0.1", server_port=port, auth=[USER], ssr_mode=False, max_file_size="20mb")


# -- servers ------------------------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen, path: str = "config", timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server behind {url} exited")
        try:
            if httpx.get(url + path, timeout=60).status_code in (200, 401):
                return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not start")


def start_app(data_dir: Path) -> tuple[str, subprocess.Popen]:
    from webapp.store import Store

    store = Store(folder=data_dir)
    store.create_user(*USER)
    store.engine.dispose()
    port = _free_port()
    env = {**os.environ, "CIFAKE_DATA_DIR": str(data_dir), "GRADIO_SERVER_PORT": str(port), "CIFAKE_WARMUP": "0",
           "CIFAKE_ADMIN_PASSWORD": "bench-admin-password-1", "GRADIO_ANALYTICS_ENABLED": "False",
           "CIFAKE_VISITOR_UPLOAD_MB_PER_MINUTE": str(VISITOR_UPLOAD_MB)}
    process = subprocess.Popen([sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    _wait_until_up(url, process)
    return url, process


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_bare() -> tuple[str, subprocess.Popen]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.load", "--serve-bare", str(port)], cwd=PROJECT_ROOT,
                               env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    _wait_until_up(url, process)
    return url, process


# -- hostile uploads ------------------------------------------------------------------------------------
def hostile_files(folder: Path) -> list[tuple[str, Path]]:
    """(endpoint, file) pairs a probe would send."""
    files = []
    for bits in (8, 16):
        path = folder / f"huge_{bits}bit.png"
        path.write_bytes(flat_png(7000, 7000, bits))
        files.append(("/predict", path))
    bomb = folder / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(30):
            archive.writestr(f"bomb{i}.jpg", bytes(48 * 2**20))
    files.append(("/batch", bomb))
    text = folder / "notes.jpg"
    text.write_text("not a picture")
    files.append(("/predict", text))
    return files


# -- measuring ------------------------------------------------------------------------------------------
def _client(url: str):
    from gradio_client import Client

    return Client(url, auth=USER, verbose=False, httpx_kwargs={"timeout": 900})


def run_clients(sessions: list, requests: int) -> dict:
    """One thread per signed-in client, each sending `requests` example pictures to /predict."""
    from gradio_client import handle_file

    clients = len(sessions)
    latencies, errors, lock = [], [], threading.Lock()

    def work(index: int):
        for i in range(requests):
            picture = EXAMPLES[(index + i) % len(EXAMPLES)]
            start = time.perf_counter()
            try:
                sessions[index].predict(handle_file(str(picture)), api_name="/predict")
                with lock:
                    latencies.append(time.perf_counter() - start)
            except Exception as err:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(repr(err)[:200])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    return {"requests": clients * requests, "ok": len(latencies), "errors": len(errors), "seconds": round(elapsed, 2),
            "req_per_s": round(len(latencies) / elapsed, 2),
            "p50_s": round(statistics.median(ordered), 3) if ordered else None,
            "p95_s": round(ordered[int(0.95 * (len(ordered) - 1))], 3) if ordered else None,
            "first_errors": errors[:3]}


def hostile_loop(client, url: str, files: list[tuple[str, Path]], stop: threading.Event, counts: dict) -> None:
    """Hostile uploads from a signed-in client, and wrong passwords for the same account from another address."""
    from gradio_client import handle_file

    attacker = httpx.Client(transport=httpx.HTTPTransport(local_address=ATTACKER_ADDRESS), timeout=60)
    while not stop.is_set():
        for endpoint, path in files:
            if stop.is_set():
                return
            argument = [handle_file(str(path))] if endpoint == "/batch" else handle_file(str(path))
            try:
                client.predict(argument, api_name=endpoint)
                outcome = "answered"
            except Exception:  # noqa: BLE001 - refusals with a message are an expected outcome
                outcome = "refused"
            key = f"{endpoint} {path.name} {outcome}"
            counts[key] = counts.get(key, 0) + 1
            attacker.post(url + "login", data={"username": USER[0], "password": "wrong-guess"})
    attacker.close()


def start_attacks(url: str, data_dir: Path, stop: threading.Event, counts: AttackCounts) -> list[threading.Thread]:
    """One thread per issue-20 attack kind, each repeating its round until `stop` (at least once)."""
    visitor = httpx.Client(base_url=url, timeout=120)
    visitor.get("/")
    member = httpx.Client(base_url=url, timeout=120)
    member.get("/")
    member.post("/login", data={"username": USER[0], "password": USER[1]}).raise_for_status()
    paths = ["/dev/zero", "/etc/passwd", str(data_dir / "secret_key"), str(data_dir)]
    flood = UploadFlood(url, counts, FLOOD_ADDRESS, VISITOR_UPLOAD_MB)
    rounds = [lambda: named_path_round(visitor, member, paths, counts),
              lambda: huge_body_round(url, counts, BODY_ADDRESS),
              lambda: many_files_round(url, counts, FILES_ADDRESS),
              flood.round]
    threads = [threading.Thread(target=_counting_failures, args=(stop, round_once, counts), daemon=True)
               for round_once in rounds]
    for thread in threads:
        thread.start()
    return threads


def _counting_failures(stop: threading.Event, round_once, counts: AttackCounts) -> None:
    try:
        repeat_until(stop, round_once)
    except Exception as err:  # noqa: BLE001 - an attack client that breaks is reported, not fatal
        counts.add("attack_client_crashed", "other", repr(err))


def login_flood(url: str, stop: threading.Event, threads: int = 10) -> list[threading.Thread]:
    def flood(index: int):
        with httpx.Client(transport=httpx.HTTPTransport(local_address=f"127.0.0.{10 + index}"), timeout=60) as client:
            while not stop.is_set():
                client.post(url + "login", data={"username": "admin", "password": f"guess-{time.time()}"})

    workers = [threading.Thread(target=flood, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    return workers


def watch_memory(process: subprocess.Popen, peak: list, stop: threading.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss(process))
        time.sleep(0.05)


def rss(process: subprocess.Popen) -> int:
    import psutil

    return psutil.Process(process.pid).memory_info().rss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50, help="concurrent normal clients")
    parser.add_argument("--requests", type=int, default=20, help="/predict calls per client")
    parser.add_argument("--no-hostile", action="store_true", help="no hostile uploads during the app's run")
    parser.add_argument("--login-flood-only", action="store_true", help="only /predict p50 idle vs a login flood")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(PROJECT_ROOT / "bench" / "results" / "load.json"))
    args = parser.parse_args(argv)
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return 0
    folder = Path(tempfile.mkdtemp(prefix="cifake-load-"))
    app_url, app = start_app(folder / "data")
    if args.login_flood_only:
        try:
            report = {"login_flood": measure_login_flood(app_url)}
        finally:
            stop_server(app)
        print(json.dumps(report, indent=2))
        return 0
    bare_url, bare = start_bare()
    report: dict = {"clients": args.clients, "requests_per_client": args.requests}
    try:
        from gradio_client import handle_file

        _client(app_url).predict(handle_file(str(EXAMPLES[0])), api_name="/predict")  # model loaded before timing
        report["bare"] = run_clients([_client(bare_url) for _ in range(args.clients)], args.requests)
        sessions = [_client(app_url) for _ in range(args.clients)]  # signed in before the attack starts
        baseline, peak, stop = rss(app), [rss(app)], threading.Event()
        watcher = threading.Thread(target=watch_memory, args=(app, peak, stop), daemon=True)
        watcher.start()
        counts, attacks = {}, AttackCounts()
        files = [] if args.no_hostile else hostile_files(folder)
        hostile = [threading.Thread(target=hostile_loop, args=(_client(app_url), app_url, files, stop, counts),
                                    daemon=True) for _ in range(0 if args.no_hostile else 2)]
        for thread in hostile:
            thread.start()
        if not args.no_hostile:
            hostile += start_attacks(app_url, folder / "data", stop, attacks)
        report["app"] = run_clients(sessions, args.requests)
        stop.set()
        for thread in hostile:
            thread.join(300)
        report["app"]["hostile"] = counts
        report["app"]["attacks"] = attacks.by_kind()
        report["app"]["peak_memory_over_idle_mb"] = round((peak[0] - baseline) / 2**20)
        report["ratio_req_per_s"] = round(report["app"]["req_per_s"] / report["bare"]["req_per_s"], 3)
        report["login_flood"] = measure_login_flood(app_url)
    finally:
        for process in (app, bare):
            stop_server(process)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(summarise(report))
    return 0


def summarise(report: dict) -> str:
    """A few lines for the terminal: normal requests on both servers, then each attack kind."""
    app, bare = report["app"], report["bare"]
    lines = [f"signed-in /predict: app {app['ok']}/{app['requests']} ok, {app['errors']} errors, "
             f"{app['req_per_s']} req/s (p50 {app['p50_s']} s, p95 {app['p95_s']} s); bare {bare['req_per_s']} req/s; "
             f"ratio {report['ratio_req_per_s']}; peak memory +{app['peak_memory_over_idle_mb']} MB over idle"]
    for kind, tally in app.get("attacks", {}).items():
        extra = f", within budget {tally['within_budget']}" if "within_budget" in tally else ""
        lines.append(f"  {kind:32s} sent {tally['sent']:4d}  refused {tally['refused']:4d}  "
                     f"accepted {tally['accepted']}  other {tally['other']}{extra}")
    return "\n".join(lines)


def measure_login_flood(url: str, calls: int = 30) -> dict:
    """/predict p50 of one signed-in client, idle and during a 10-thread flood of wrong sign-ins."""
    from gradio_client import handle_file

    client = _client(url)

    def p50() -> float:
        times = []
        for i in range(calls):
            start = time.perf_counter()
            client.predict(handle_file(str(EXAMPLES[i % len(EXAMPLES)])), api_name="/predict")
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    idle = p50()
    stop = threading.Event()
    workers = login_flood(url, stop)
    time.sleep(1)
    flooded = p50()
    stop.set()
    for worker in workers:
        worker.join(10)
    return {"idle_p50_s": round(idle, 3), "flood_p50_s": round(flooded, 3), "ratio": round(flooded / idle, 2)}


if __name__ == "__main__":
    sys.exit(main())
