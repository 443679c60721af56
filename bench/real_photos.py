"""Real photographs that are not CIFAR-10: how often are they called AI-generated?
`python -m bench.real_photos`

The set is built offline from the sample photographs bundled with scikit-image and scikit-learn
(recipe below; nothing is downloaded): each photo whole and as random square crops at 1/2 and 1/4 of
its shorter side, plus scikit-image's 200 LFW face photos. Every picture goes through the app's own
preprocessing (squashed to 32x32, antialiased) and the ONNX model. Also reports, for comparison, how
many CIFAKE test images the out-of-domain score flags.
Writes `bench/results/real_photos.json` and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from inference.classifier import Classifier

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
GROUPS = {
    "scenes and objects": ("astronaut", "camera", "chelsea", "coffee", "rocket", "clock", "coins",
                           "stereo_motorcycle", "sklearn:china.jpg", "sklearn:flower.jpg"),
    "textures": ("brick", "grass", "gravel"),
    "scientific": ("hubble_deep_field", "immunohistochemistry", "retina", "moon"),
}


def _as_rgb8(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image[..., :3]


def load_photo(name: str) -> np.ndarray:
    if name.startswith("sklearn:"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(name.split(":", 1)[1])
    import skimage.data

    image = getattr(skimage.data, name)()
    if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
        image = image[0]
    return _as_rgb8(image)


def crops(image: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """The whole photo, 8 random square crops of 1/2 and 16 of 1/4 of its shorter side."""
    out = [image]
    height, width = image.shape[:2]
    for fraction, count in ((0.5, 8), (0.25, 16)):
        side = int(min(height, width) * fraction)
        for _ in range(count):
            y, x = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
            out.append(image[y:y + side, x:x + side])
    return out


def build_set(seed: int = 0) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    sets = {group: [c for name in names for c in crops(load_photo(name), rng)] for group, names in GROUPS.items()}
    import skimage.data

    sets["faces (LFW, 25×25)"] = [_as_rgb8(face) for face in skimage.data.lfw_subset()[:100]]  # first 100 are faces
    return sets


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "cifake"))
    parser.add_argument("--ood-quantiles", type=float, nargs="*", default=[0.95, 0.97, 0.98, 0.99, 0.995],
                        help="also report the trade-off at these validation quantiles of the OOD threshold")
    args = parser.parse_args(argv)
    clf = Classifier()
    result = {"groups": {}, "model_version": clf.metadata.get("version")}
    all_predictions = []
    for group, images in build_set().items():
        predictions = [clf.predict(image) for image in images]
        all_predictions += predictions
        result["groups"][group] = summarise(predictions)
    result["all"] = summarise(all_predictions)
    test_split = Path(args.data)
    if (test_split / "test.zip").exists():
        from training.data import read_split

        test = read_split(test_split, "test")[0]
        _, ood = clf.run(test.images)
        result["cifake_test_flagged_out_of_domain"] = float((ood > clf.ood_threshold).mean())
        result["ood_tradeoff"] = ood_tradeoff(clf, test_split, ood, build_set(), args.ood_quantiles)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "real_photos.json").write_text(json.dumps(result, indent=2))
    print(markdown(result))


def ood_tradeoff(clf: Classifier, data_path: Path, test_ood: np.ndarray, photo_sets: dict, quantiles) -> list[dict]:
    """Other OOD thresholds (quantiles of validation scores): CIFAKE flagged vs real photos called FAKE."""
    from training.data import load_cifake

    _, val_ood = clf.run(load_cifake(data_path).val.images)
    pixels = np.stack([clf.prepare(image).pixels for images in photo_sets.values() for image in images])
    p_fake, photo_ood = clf.run(pixels)
    rows = []
    for q in quantiles:
        threshold = float(np.quantile(val_ood, q))
        called_fake = (p_fake >= clf.threshold) & (np.maximum(p_fake, 1 - p_fake) >= clf.leaning_from)
        rows.append({"quantile": q, "threshold": threshold,
                     "cifake_test_flagged": float((test_ood > threshold).mean()),
                     "real_photos_called_ai_generated": float((called_fake & (photo_ood <= threshold)).mean())})
    return rows


def summarise(predictions) -> dict:
    n = len(predictions)
    likely_fake = [p for p in predictions if p.likely_label == "FAKE"]
    return {
        "n": n,
        "called_ai_generated": sum(p.label == "FAKE" for p in predictions) / n,  # the verdict shown
        "likely_fake_without_ood_gate": len(likely_fake) / n,  # threshold 0.5 alone
        "uncertain": sum(p.label == "UNCERTAIN" for p in predictions) / n,
        "out_of_domain": sum(p.out_of_domain for p in predictions) / n,
        "false_positives_caught_by_ood": (sum(p.out_of_domain for p in likely_fake) / len(likely_fake)) if likely_fake else None,
    }


def markdown(result: dict) -> str:
    lines = ["| real photos | n | called AI-generated | P(FAKE) ≥ 0.5 (no gate) | uncertain | out of domain |",
             "|---|---|---|---|---|---|"]
    for group, row in {**result["groups"], "all": result["all"]}.items():
        lines.append(f"| {group} | {row['n']} | {row['called_ai_generated'] * 100:.1f} % | "
                     f"{row['likely_fake_without_ood_gate'] * 100:.1f} % | {row['uncertain'] * 100:.1f} % | "
                     f"{row['out_of_domain'] * 100:.1f} % |")
    caught = result["all"]["false_positives_caught_by_ood"]
    if caught is not None:
        lines.append(f"\nOf the real photos the model leans FAKE on, the out-of-domain score turns "
                     f"{caught * 100:.0f} % into 'Uncertain'.")
    for row in result.get("ood_tradeoff", []):
        lines.append(f"- OOD threshold at the {row['quantile'] * 100:g}th percentile of validation: flags "
                     f"{row['cifake_test_flagged'] * 100:.2f} % of CIFAKE test, real photos called AI-generated "
                     f"{row['real_photos_called_ai_generated'] * 100:.1f} %")
    if "cifake_test_flagged_out_of_domain" in result:
        lines.append(f"On the CIFAKE test split it flags {result['cifake_test_flagged_out_of_domain'] * 100:.2f} % "
                     "of images as out of domain.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
