"""Where one signed-in `/predict` spends its time inside the app (not Gradio's own HTTP and queue work):
`python -m bench.predict_profile [--calls 200]`

Runs the handler's steps in this process on a temporary data folder (SQLite), a real session and the
shipped ONNX model, on the committed example pictures, and reports the median of each step:
who is asking (session look-up), preparing the picture (decode, resize), the ONNX verdict, the text
explanation, and recording it (stored input PNG, thumbnail, database row). `bench.load` measures the
whole request through HTTP against a bare Gradio app; this says which part of the app's share is ours.
Results: bench/results/predict_profile.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.jpg"))


def main(argv: list[str] | None = None) -> dict:
    from inference.explain import explain
    from webapp.auth import SESSION_COOKIE
    from webapp.context import AppContext
    from webapp.service import Analysis
    from webapp.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "predict_profile.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cifake-profile-") as folder:
        ctx = AppContext.create(Settings(data_dir=folder, warm_up=False))
        ctx.service.store.create_user("profiler", "profile-password-123")
        cookies = {SESSION_COOKIE: ctx.auth.sign(ctx.service.store.create_session("profiler", "127.0.0.1"))}
        clf, version = ctx.service.classifier()
        steps: dict[str, list[float]] = {k: [] for k in ("session_lookup", "prepare", "onnx_verdict", "explanation",
                                                          "record", "total")}
        for i in range(args.calls + 5):
            path = EXAMPLES[i % len(EXAMPLES)]
            marks = [time.perf_counter()]
            user = ctx.auth.user_for({}, cookies)
            marks.append(time.perf_counter())
            prepared = clf.prepare(str(path), path.name)
            marks.append(time.perf_counter())
            prediction = clf.predict_pixels(prepared.pixels[None])[0]
            marks.append(time.perf_counter())
            explain(prediction, None, prepared.original_size)  # what Analysis.explanation builds on first use
            marks.append(time.perf_counter())
            analysis = Analysis(path.name, prediction, prepared.pixels, prepared.display, prepared.original_size,
                                version)
            ctx.service.record(user.username, analysis, "api")
            marks.append(time.perf_counter())
            if i < 5:  # warm-up
                continue
            for name, start, end in zip(steps, marks, marks[1:]):
                steps[name].append(end - start)
            steps["total"].append(marks[-1] - marks[0])
        ctx.service.store.engine.dispose()
    report = {"calls": args.calls, "median_ms": {k: round(1000 * statistics.median(v), 3) for k, v in steps.items()}}
    report["share_of_total"] = {k: round(v / report["median_ms"]["total"], 3) for k, v in report["median_ms"].items()
                                if k != "total"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
