"""Render the README's result tables from the files the scripts wrote: `python -m bench.readme_tables`.

Reads `exported/model.json`, `bench/results/*.json` (robustness, real_photos, latency) and, for the
seed row, `bench/results/seed_model.json` (a copy of the seed export's model.json). Prints Markdown.
"""
from __future__ import annotations

import json
from pathlib import Path

from inference.bands import Decision

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def result_row(name: str, meta: dict) -> str:
    test, clean = meta["metrics"]["test"], meta["metrics"]["test_without_leaked"]
    training = meta["training"]
    arch = meta.get("architecture", {})
    params = f"{arch['params'] / 1e3:.0f} k" if "params" in arch else meta.get("params", "")
    return (f"| {name} | {params} | {arch.get('mflops', meta.get('mflops', ''))} | **{test['accuracy'] * 100:.2f} %** | "
            f"{clean['accuracy'] * 100:.2f} % | {test['precision']:.4f} | {test['recall']:.4f} | {test['f1']:.4f} | "
            f"{test['roc_auc']:.4f} | {test['ece']:.4f} | {training['train_minutes']} min"
            f"{teacher_text(training)}, {training['epochs_run']} epochs (best {training['best_epoch']}) |")


def teacher_text(training: dict) -> str:
    """A distilled model's training time includes the teachers' pass over the training set."""
    return f" + {training['teacher_minutes']} min teacher pass" if training.get("teacher_minutes") else ""


def bands_table(meta: dict) -> str:
    rules, bands = Decision.from_dict(meta["decision"]).band_rules(), meta["bands"]["test"]
    lines = ["| band | rule | share of CIFAKE test | error rate |", "|---|---|---|---|"]
    for band in ("confident", "leaning", "uncertain"):
        row = bands[band]
        lines.append(f"| {band} | {rules[band]} | {row['share'] * 100:.1f} % ({row['n']}) | "
                     f"{row['error_rate'] * 100:.1f} % |")
    return "\n".join(lines)


def main() -> None:
    meta = json.loads((ROOT / "exported" / "model.json").read_text())
    print("## result rows\n")
    print(result_row("default (shipped)", meta))
    seed_file = RESULTS / "seed_model.json"
    if seed_file.exists():
        print(result_row("seed (original project's CNN)", json.loads(seed_file.read_text())))
    cal = meta["calibration"]
    print(f"\n## calibration\nvalidation ECE {cal['validation_ece_before']:.4f} before → "
          f"{cal['validation_ece_after']:.4f} after (a = {cal['a']:.3f}, b = {cal['b']:+.3f}); test ECE "
          f"{cal['test_ece_after']:.4f}")
    print(f"\n## parity\n{meta['parity']['images']} test images, max |ΔP| {meta['parity']['max_abs_diff_p_fake']:.1e}")
    print(f"\n## onnx size\n{meta['files']['model.onnx']['bytes'] / 1e6:.2f} MB")
    print("\n## bands\n" + bands_table(meta))
    ood = meta.get("out_of_domain")
    if ood:
        print(f"\n## out-of-domain rule\n{ood['method']}; fitted on {ood['fit_pictures']} pictures "
              f"({ood['fit_views']} views) of {len(ood['fit_sources'])} sources vs {ood['in_domain_images']} CIFAKE "
              f"images; chosen rule {ood['chosen_rule']}")
        print("\n| ood quantile | guard quantile | guarded bar | val confident coverage | val confident error | "
              "CV photos confidently wrong | CV generated confidently wrong |\n|---|---|---|---|---|---|---|")
        for row in ood["rule_selection"]:
            print(f"| {row['ood_quantile']} | {row['guard_quantile'] or '—'} | {row['guarded_confident_from'] or '—'} | "
                  f"{row['val_confident_coverage'] * 100:.1f} % | {row['val_confident_error'] * 100:.2f} % | "
                  f"{row['cv_real_confidently_wrong'] * 100:.1f} % | {row['cv_generated_confidently_wrong'] * 100:.1f} % |")
    from bench.offdomain import markdown as offdomain_md
    from bench.latency import markdown as latency_md
    from bench.real_photos import markdown as photos_md
    from bench.robustness import markdown as robustness_md

    for name, render in (("robustness", robustness_md), ("offdomain", offdomain_md), ("real_photos", photos_md),
                         ("latency", latency_md)):
        path = RESULTS / f"{name}.json"
        if path.exists():
            print(f"\n## {name}\n" + render(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
