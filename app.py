"""CIFAKE detector — Gradio app. `python app.py` serves http://127.0.0.1:7860 with the shipped model.

UI only: the work is done by `webapp.service.DetectorService`; this file lays out the pages,
checks roles on the server for every admin action, and turns errors into readable messages.
Settings come from environment variables (see README: Settings).
"""
from __future__ import annotations

import os

for _name, _value in (("GRADIO_ANALYTICS_ENABLED", "False"), ("ORT_DISABLE_TELEMETRY", "1"),
                      ("HF_HUB_DISABLE_TELEMETRY", "1"), ("TF_CPP_MIN_LOG_LEVEL", "2")):
    os.environ.setdefault(_name, _value)

import csv
import io
import json
import logging
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from inference.model_card import PROJECT_ROOT, load_metadata
from inference.overlay import overlay_on_model_input, overlay_on_original
from webapp.service import CAM_METHODS, DetectorService
from webapp.store import AccountError, MIN_PASSWORD

log = logging.getLogger("cifake.app")
EXAMPLES_DIR = PROJECT_ROOT / "examples"
VERDICT_TEXT = {"FAKE": "AI-generated", "REAL": "Real photograph", "UNCERTAIN": "Uncertain"}
IMAGE_TYPES = [".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"]


@dataclass(frozen=True)
class Settings:
    data_dir: str = os.environ.get("CIFAKE_DATA_DIR", str(PROJECT_ROOT / "data"))
    database_url: str | None = os.environ.get("CIFAKE_DATABASE_URL") or None
    allow_signup: bool = os.environ.get("CIFAKE_ALLOW_SIGNUP", "0").lower() in ("1", "true", "yes")
    max_file_mb: int = int(os.environ.get("CIFAKE_MAX_FILE_MB", "20"))
    queue_size: int = int(os.environ.get("CIFAKE_QUEUE_SIZE", "64"))
    classify_concurrency: int = int(os.environ.get("CIFAKE_CLASSIFY_CONCURRENCY", "4"))
    eval_data: str = os.environ.get("CIFAKE_EVAL_DATA", str(PROJECT_ROOT.parent / "shared" / "datasets" / "cifake"))
    warm_up: bool = os.environ.get("CIFAKE_WARMUP", "1") != "0"


# -- helpers ----------------------------------------------------------------------------------------
def _user(request: gr.Request | None) -> str:
    username = getattr(request, "username", None)
    if not username:
        raise gr.Error("Please sign in.")
    return username


def _require_admin(service: DetectorService, request: gr.Request | None) -> str:
    username = _user(request)
    user = service.store.get_user(username)
    if user is None or not user.is_admin:
        raise gr.Error("Only administrators can do this.", title="Not allowed")
    return username


def _file_path(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return getattr(value, "name", None) or (value.get("path") if isinstance(value, dict) else value)


def _verdict_markdown(analysis) -> str:
    p = analysis.prediction
    label = VERDICT_TEXT[p.label]
    lean = "" if p.label != "UNCERTAIN" else f" (leans {VERDICT_TEXT[p.likely_label].lower()})"
    return (f"## {label}{lean}\n**Confidence:** {p.confidence * 100:.1f} %  ·  **P(AI-generated):** "
            f"{p.p_fake * 100:.1f} %  ·  **band:** {p.band}" + ("  ·  **out of domain**" if p.out_of_domain else "")
            + f"  ·  model v{analysis.model_version}")


def _save_temp(data: bytes, suffix: str, prefix: str = "cifake-") -> str:
    handle = tempfile.NamedTemporaryFile(delete=False, suffix=suffix, prefix=prefix)
    handle.write(data)
    handle.close()
    return handle.name


def _png_path(image: Image.Image, prefix: str) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return _save_temp(buffer.getvalue(), ".png", prefix)


def _metrics_rows(metadata: dict) -> list[list]:
    rows = []
    for split, values in metadata.get("metrics", {}).items():
        rows.append([split, values["n"], f"{values['accuracy'] * 100:.2f} %", f"{values['precision']:.4f}",
                     f"{values['recall']:.4f}", f"{values['f1']:.4f}",
                     f"{values['roc_auc']:.4f}" if values.get("roc_auc") is not None else "—", f"{values['ece']:.4f}"])
    return rows


def _bands_markdown(metadata: dict) -> str:
    bands = metadata.get("bands", {}).get("test")
    if not bands:
        return ""
    decision = metadata["decision"]
    lines = ["| band | rule | share of CIFAKE test | error rate |", "|---|---|---|---|"]
    rules = {"confident": f"confidence ≥ {decision['confident_from']:.2f}, in domain",
             "leaning": f"{decision['leaning_from']:.2f} ≤ confidence < {decision['confident_from']:.2f}",
             "uncertain": f"confidence < {decision['leaning_from']:.2f} or out of domain"}
    for band in ("confident", "leaning", "uncertain"):
        row = bands[band]
        error = "—" if row["error_rate"] is None else f"{row['error_rate'] * 100:.1f} %"
        lines.append(f"| {band} | {rules[band]} | {row['share'] * 100:.1f} % | {error} |")
    return "\n".join(lines)


# -- the app ------------------------------------------------------------------------------------------
def build_app(service: DetectorService, settings: Settings = Settings()) -> gr.Blocks:
    metadata = load_metadata(service.registry.active_dir(), check_files=())

    def classify_upload(file_value, request: gr.Request, source: str, missing: str):
        """Signed-in user's upload -> recorded Analysis; unreadable files become a readable message."""
        username = _user(request)
        path = _file_path(file_value)
        if not path:
            raise gr.Error(missing)
        try:
            analysis = service.classify(path, Path(path).name)
        except ValueError as err:
            raise gr.Error(str(err), title="Cannot read this file") from None
        service.record(username, analysis, source)
        return analysis

    # ---- predict -------------------------------------------------------------------------------
    def analyse(file_value, method_label: str, target: str, opacity: float, request: gr.Request):
        analysis = classify_upload(file_value, request, "ui", "Upload a picture first (or click an example).")
        first = (_verdict_markdown(analysis), {"AI-generated": analysis.prediction.p_fake,
                                               "Real": 1 - analysis.prediction.p_fake},
                 analysis.explanation.text + "\n\n*Computing the heatmap…*", None, None, None, analysis.record_id)
        yield first
        try:
            service.add_heatmap(analysis, CAM_METHODS.get(method_label, "gradcam"),
                                None if target == "predicted class" else ("FAKE" if target == "AI-generated" else "REAL"))
        except Exception as err:  # noqa: BLE001 - the verdict stands even if the heatmap fails
            log.exception("heatmap failed")
            yield first[:2] + (analysis.explanation.text + f"\n\n*No heatmap: {err}*", None, None, None, analysis.record_id)
            return
        small = overlay_on_model_input(analysis.pixels, analysis.heatmap, opacity=opacity)
        large = overlay_on_original(analysis.original, analysis.heatmap, opacity=opacity)
        report = _save_temp(json.dumps(analysis.to_dict(), indent=2).encode(), ".json", "cifake-result-")
        yield (first[0], first[1], analysis.explanation.text, small, large,
               [report, _png_path(large, "cifake-heatmap-")], analysis.record_id)

    def flag(record_id, claimed: str, request: gr.Request):
        username = _user(request)
        if not record_id:
            raise gr.Error("Analyse a picture first.")
        label = "FAKE" if claimed == "FAKE" else "REAL"
        try:
            kind = service.flag(username, int(record_id), label)
        except PermissionError as err:
            raise gr.Error(str(err)) from None
        return ("Thanks — noted as correct." if kind == "confirm" else
                f"Thanks — flagged as wrong; an admin will review the label '{VERDICT_TEXT[label]}'.")

    # ---- API endpoints ---------------------------------------------------------------------------
    def api_predict(image, request: gr.Request) -> tuple[str, float, float, str]:
        """Classify one picture.

        Returns (label, probability, confidence, explanation): label is "REAL", "FAKE" or "UNCERTAIN";
        probability is the calibrated P(AI-generated) in [0, 1]; confidence is the probability of
        the more likely class in [0.5, 1]; explanation is plain text.
        """
        analysis = classify_upload(image, request, "api",
                                   "Send a picture: client.predict(handle_file('photo.jpg'), api_name='/predict').")
        p = analysis.prediction
        return p.label, round(p.p_fake, 6), round(p.confidence, 6), analysis.explanation.text

    def api_predict_heatmap(image, method: str, request: gr.Request):
        """Classify one picture and explain it with a CAM heatmap.

        method: "Grad-CAM", "Grad-CAM++" or "HiResCAM". Returns (label, probability, confidence,
        explanation, heatmap overlay PNG, result JSON).
        """
        if method not in CAM_METHODS:
            raise gr.Error(f"method must be one of {list(CAM_METHODS)}; got {method!r}.")
        analysis = classify_upload(image, request, "api", "Send a picture.")
        service.add_heatmap(analysis, CAM_METHODS[method])
        p = analysis.prediction
        overlay = overlay_on_original(analysis.original, analysis.heatmap)
        result = _save_temp(json.dumps(analysis.to_dict(), indent=2).encode(), ".json", "cifake-result-")
        return p.label, round(p.p_fake, 6), round(p.confidence, 6), analysis.explanation.text, overlay, result

    # ---- batch ----------------------------------------------------------------------------------
    def run_batch(files, request: gr.Request, progress=gr.Progress()):
        username = _user(request)
        paths = [_file_path(f) for f in (files or [])]
        if not paths:
            raise gr.Error("Upload pictures or a zip first.")
        sources = list(_iter_batch_sources(paths))
        if not sources:
            raise gr.Error("No pictures found in the upload (accepted: JPEG, PNG, WebP, GIF, BMP, TIFF, or a zip).")
        rows = []
        for name, source in progress.tqdm(sources, desc="Classifying"):
            try:
                analysis = service.classify(source, name)
            except ValueError as err:
                rows.append([name, "error", None, None, "", str(err)])
                continue
            service.record(username, analysis, "batch")
            p = analysis.prediction
            rows.append([name, VERDICT_TEXT[p.label], round(p.p_fake, 4), round(p.confidence, 4), p.band, ""])
        counts = {k: sum(r[1] == v for r in rows) for k, v in VERDICT_TEXT.items()}
        errors = sum(r[1] == "error" for r in rows)
        summary = (f"**{len(rows)} files:** {counts['FAKE']} AI-generated · {counts['REAL']} real · "
                   f"{counts['UNCERTAIN']} uncertain · {errors} unreadable")
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["file", "verdict", "p_fake", "confidence", "band", "error"])
        writer.writerows(rows)
        return rows, summary, _save_temp(buffer.getvalue().encode(), ".csv", "cifake-batch-")

    # ---- history --------------------------------------------------------------------------------
    def load_history(request: gr.Request):
        username = _user(request)
        user = service.store.get_user(username)
        everyone = user is not None and user.is_admin
        records = service.store.history(None if everyone else username)
        rows = [[r["id"], datetime.fromtimestamp(r["created_at"]).strftime("%Y-%m-%d %H:%M:%S"), r["username"],
                 r["file_name"], VERDICT_TEXT.get(r["label"], r["label"]), round(r["confidence"], 4), r["band"],
                 r["model_version"], r["source"]] for r in records]
        gallery = [(Image.open(io.BytesIO(r["thumbnail"])), f"{r['file_name']} · {VERDICT_TEXT.get(r['label'])} "
                    f"{r['confidence'] * 100:.0f} %") for r in records[:40] if r["thumbnail"]]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["id", "time", "user", "file", "verdict", "confidence", "band", "model_version", "source"])
        writer.writerows(rows)
        title = "All users' predictions (admin view)" if everyone else "Your predictions"
        return f"### {title}", rows, gallery, _save_temp(buffer.getvalue().encode(), ".csv", "cifake-history-")

    def api_history(request: gr.Request) -> list[dict]:
        """The caller's prediction history, newest first (admins: everyone's)."""
        username = _user(request)
        user = service.store.get_user(username)
        records = service.store.history(None if user and user.is_admin else username)
        return [{k: r[k] for k in ("id", "created_at", "username", "file_name", "label", "p_fake", "confidence",
                                   "band", "model_version", "source")} for r in records]

    # ---- profile --------------------------------------------------------------------------------
    def load_profile(request: gr.Request):
        user = service.store.get_user(_user(request))
        p = user.profile
        return (f"Signed in as **{user.username}** ({user.role})", p["full_name"], p["email"], p["mobile"],
                p["age"], p["address"], p["picture"] or None)

    def save_profile(full_name, email, mobile, age, address, picture, request: gr.Request):
        username = _user(request)
        picture_path = ""
        if _file_path(picture):
            try:
                from inference.preprocess import load_image

                image, _ = load_image(_file_path(picture))
            except ValueError as err:
                raise gr.Error(f"Profile picture: {err}") from None
            image.thumbnail((256, 256))
            target = service.folder / "profiles" / f"{username}.png"
            target.parent.mkdir(exist_ok=True)
            image.save(target)
            picture_path = str(target)
        try:
            service.store.update_profile(username, full_name=full_name, email=email, mobile=mobile,
                                         age=age if age not in (None, "") else None, address=address,
                                         **({"picture": picture_path} if picture_path else {}))
        except AccountError as err:
            raise gr.Error(str(err)) from None
        return "Profile saved."

    def change_password(current, new, repeat, request: gr.Request):
        username = _user(request)
        if new != repeat:
            raise gr.Error("The new passwords differ.")
        if not service.store.authenticate(username, current or ""):
            raise gr.Error("The current password is wrong.")
        try:
            service.store.set_password(username, new or "")
        except AccountError as err:
            raise gr.Error(str(err)) from None
        return "Password changed.", "", "", ""

    # ---- admin ------------------------------------------------------------------------------------
    def admin_model(request: gr.Request):
        _require_admin(service, request)
        folder = service.registry.active_dir()
        meta = load_metadata(folder, check_files=())
        plots = [str(folder / p) for p in meta.get("plots", {}).values() if (folder / p).exists()]
        summary = (f"### Model v{service.registry.active_version()} — `{meta.get('model_name')}`, exported "
                   f"{meta.get('created')}\nPlatt calibration a={meta['calibration'].get('a', 1):.3f}, "
                   f"b={meta['calibration'].get('b', 0):.3f} · "
                   f"ECE on validation {meta['calibration']['validation_ece_before']:.4f} → "
                   f"{meta['calibration']['validation_ece_after']:.4f} · out-of-domain threshold "
                   f"{meta['decision']['ood_threshold']:.1f} · trained {meta['training']['train_minutes']} min, "
                   f"{meta['training']['epochs_run']} epochs\n\n{_bands_markdown(meta)}")
        return summary, _metrics_rows(meta), plots

    def admin_evaluate(source: str, upload, request: gr.Request, progress=gr.Progress()):
        _require_admin(service, request)
        from training.data import DatasetLayoutError, load_labelled, read_split
        from training.metrics import compute_metrics, save_plots

        progress(0.02, desc="Loading data")
        try:
            if source == "Official test split":
                data_path = Path(settings.eval_data)
                if not data_path.exists():
                    raise gr.Error(f"No CIFAKE data at {data_path}; set CIFAKE_EVAL_DATA or upload a labelled zip.")
                split = read_split(data_path, "test")[0]
            else:
                path = _file_path(upload)
                if not path:
                    raise gr.Error("Upload a labelled zip (REAL/ and FAKE/ folders).")
                split = load_labelled(path)
        except (DatasetLayoutError, ValueError, FileNotFoundError) as err:
            raise gr.Error(str(err)) from None
        clf, version = service.classifier()
        scores = []
        for start in progress.tqdm(range(0, len(split), 1024), desc="Classifying"):
            scores.append(clf.run(split.images[start:start + 1024])[0])
        p_fake = np.concatenate(scores)
        metrics = compute_metrics(split.labels, p_fake, clf.threshold)
        out_dir = Path(tempfile.mkdtemp(prefix="cifake-eval-"))
        plots = save_plots(split.labels, p_fake, out_dir, clf.threshold, f"({source.lower()}, v{version})")
        rows = [[f"{source} (v{version})", metrics["n"], f"{metrics['accuracy'] * 100:.2f} %",
                 f"{metrics['precision']:.4f}", f"{metrics['recall']:.4f}", f"{metrics['f1']:.4f}",
                 f"{metrics['roc_auc']:.4f}" if metrics["roc_auc"] is not None else "—", f"{metrics['ece']:.4f}"]]
        return rows, list(plots.values()), metrics

    def admin_users(request: gr.Request):
        _require_admin(service, request)
        return [[u["username"], u["role"], "disabled" if u["disabled"] else "active", u["full_name"], u["email"]]
                for u in service.store.list_users()]

    def admin_create_user(username, password, role, request: gr.Request):
        _require_admin(service, request)
        try:
            service.store.create_user(username or "", password or "", role)
        except AccountError as err:
            raise gr.Error(str(err)) from None
        return f"Created {username} ({role}).", admin_users(request)

    def admin_set_disabled(username, disabled: bool, request: gr.Request):
        admin = _require_admin(service, request)
        if username == admin and disabled:
            raise gr.Error("You cannot disable your own account.")
        try:
            service.store.set_disabled(username or "", disabled)
        except AccountError as err:
            raise gr.Error(str(err)) from None
        return f"{username} {'disabled' if disabled else 'enabled'}.", admin_users(request)

    def admin_reset_password(username, password, request: gr.Request):
        _require_admin(service, request)
        try:
            service.store.set_password(username or "", password or "")
        except AccountError as err:
            raise gr.Error(str(err)) from None
        return f"Password of {username} reset.", admin_users(request)

    # ---- retraining (admin) ---------------------------------------------------------------------
    def admin_feedback(request: gr.Request):
        _require_admin(service, request)
        items = service.store.list_feedback()
        rows = [[f["id"], f["username"], f["kind"], f["claimed_label"], f["status"], f["image_path"]] for f in items]
        pending = [(str(service.folder / f["image_path"]), f"#{f['id']} claimed {f['claimed_label']} by {f['username']}")
                   for f in items if f["status"] == "pending"]
        return rows, pending

    def admin_review(feedback_id, accept: bool, request: gr.Request):
        admin = _require_admin(service, request)
        try:
            service.store.review_feedback(int(feedback_id), accept, admin)
        except (AccountError, TypeError, ValueError) as err:
            raise gr.Error(f"Feedback #{feedback_id}: {err}") from None
        return admin_feedback(request)

    def admin_upload_labelled(upload, request: gr.Request):
        admin = _require_admin(service, request)
        path = _file_path(upload)
        if not path:
            raise gr.Error("Upload a zip with REAL/ and FAKE/ folders.")
        from training.data import load_labelled  # the same loader as training (admins only)

        try:
            split = load_labelled(path)
            count = service.add_labelled_images(admin, split.images, split.labels)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        return f"Added {count} labelled images (accepted).", *admin_feedback(request)

    def admin_retrain(steps, request: gr.Request):
        admin = _require_admin(service, request)
        try:
            service.start_retrain(admin, int(steps) if steps else None)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        return _status_markdown(service.retrain_status())

    def admin_retrain_status(request: gr.Request):
        _require_admin(service, request)
        return _status_markdown(service.retrain_status()), service.registry.describe_rows()

    def admin_cancel(request: gr.Request):
        _require_admin(service, request)
        cancelled = service.cancel_retrain()
        return "Cancelled." if cancelled else "No retraining run is in progress."

    def admin_activate(version, request: gr.Request):
        admin = _require_admin(service, request)
        try:
            service.activate(int(version), admin, "set by an admin")
        except (ValueError, TypeError) as err:
            raise gr.Error(str(err)) from None
        return f"Model v{int(version)} is now serving.", service.registry.describe_rows()

    def page_load(request: gr.Request):
        username = _user(request)
        user = service.store.get_user(username)
        admin = bool(user and user.is_admin)
        header = f"Signed in as **{username}** ({'admin' if admin else 'user'}) · [Sign out](/logout)"
        return (header,) + tuple(gr.update(visible=admin) for _ in admin_tabs)

    # ---- layout -----------------------------------------------------------------------------------
    examples = sorted(str(p) for p in EXAMPLES_DIR.glob("*.jpg"))
    with gr.Blocks(title="CIFAKE detector — real or AI-generated?") as demo:
        with gr.Row():
            gr.Markdown("# CIFAKE detector\nIs this picture a real photograph or AI-generated? "
                        "The verdict comes with a heatmap of what the model looked at.")
            header = gr.Markdown(elem_id="whoami")
        admin_tabs = []
        with gr.Tabs():
            with gr.Tab("Predict", id="predict"):
                with gr.Row():
                    with gr.Column(scale=1):
                        upload = gr.File(label="Picture (JPEG, PNG, WebP, GIF, BMP, TIFF)", file_types=IMAGE_TYPES,
                                         type="filepath", elem_id="upload")
                        method = gr.Radio(list(CAM_METHODS), value="Grad-CAM", label="Heatmap method")
                        target = gr.Radio(["predicted class", "AI-generated", "Real"], value="predicted class",
                                          label="Explain which class")
                        opacity = gr.Slider(0.1, 0.9, value=0.45, step=0.05, label="Heatmap opacity")
                        run = gr.Button("Analyse", variant="primary", elem_id="analyse")
                        if examples:
                            gr.Examples(examples, inputs=upload, label="CIFAKE test pictures (real and AI-generated)")
                    with gr.Column(scale=2):
                        verdict = gr.Markdown(elem_id="verdict")
                        scores = gr.Label(label="Probabilities (calibrated)", num_top_classes=2)
                        explanation = gr.Markdown(elem_id="explanation")
                        with gr.Row():
                            heat_small = gr.Image(label="What the model saw (32×32, enlarged) + heatmap",
                                                  elem_id="heatmap", format="png")
                            heat_large = gr.Image(label="Heatmap over your picture", format="png")
                        downloads = gr.File(label="Download result (JSON) and heatmap (PNG)", file_count="multiple")
                        record_id = gr.Number(visible=False, precision=0)
                        with gr.Row():
                            gr.Markdown("Was the verdict right? Tell us what the picture really is:")
                            say_real = gr.Button("It is a real photo", size="sm")
                            say_fake = gr.Button("It is AI-generated", size="sm")
                        feedback_msg = gr.Markdown()
                run.click(analyse, [upload, method, target, opacity],
                          [verdict, scores, explanation, heat_small, heat_large, downloads, record_id],
                          api_visibility="private", concurrency_limit=settings.classify_concurrency,
                          concurrency_id="heatmap")
                say_real.click(lambda r, request: flag(r, "REAL", request), [record_id], feedback_msg,
                               api_visibility="private")
                say_fake.click(lambda r, request: flag(r, "FAKE", request), [record_id], feedback_msg,
                               api_visibility="private")

            with gr.Tab("Batch", id="batch"):
                batch_files = gr.File(label="Pictures or zips", file_count="multiple", type="filepath",
                                      file_types=IMAGE_TYPES + [".zip"])
                batch_run = gr.Button("Classify all", variant="primary")
                batch_summary = gr.Markdown()
                batch_table = gr.Dataframe(headers=["file", "verdict", "p_fake", "confidence", "band", "error"],
                                           interactive=False, wrap=True)
                batch_csv = gr.File(label="Results (CSV)")
                batch_run.click(run_batch, batch_files, [batch_table, batch_summary, batch_csv], api_name="batch",
                                concurrency_limit=2)

            with gr.Tab("History", id="history"):
                history_title = gr.Markdown()
                history_refresh = gr.Button("Refresh")
                history_gallery = gr.Gallery(label="Recent pictures", columns=8, height=220)
                history_table = gr.Dataframe(headers=["id", "time", "user", "file", "verdict", "confidence", "band",
                                                      "model", "via"], interactive=False)
                history_csv = gr.File(label="Export (CSV)")
                history_refresh.click(load_history, None, [history_title, history_table, history_gallery, history_csv],
                                      api_visibility="private")

            with gr.Tab("Profile", id="profile"):
                profile_who = gr.Markdown()
                with gr.Row():
                    full_name = gr.Textbox(label="Full name")
                    email = gr.Textbox(label="E-mail")
                    mobile = gr.Textbox(label="Mobile")
                    age = gr.Number(label="Age", precision=0)
                address = gr.Textbox(label="Address", lines=2)
                with gr.Row():
                    picture_show = gr.Image(label="Picture", height=160, interactive=False)
                    picture = gr.File(label="New picture", file_types=IMAGE_TYPES, type="filepath")
                profile_save = gr.Button("Save profile")
                profile_msg = gr.Markdown()
                with gr.Accordion("Change password", open=False):
                    current_pw = gr.Textbox(label="Current password", type="password")
                    new_pw = gr.Textbox(label=f"New password (≥ {MIN_PASSWORD} characters)", type="password")
                    repeat_pw = gr.Textbox(label="Repeat the new password", type="password")
                    pw_button = gr.Button("Change password")
                profile_save.click(save_profile, [full_name, email, mobile, age, address, picture], profile_msg,
                                   api_visibility="private")
                pw_button.click(change_password, [current_pw, new_pw, repeat_pw],
                                [profile_msg, current_pw, new_pw, repeat_pw], api_visibility="private")

            with gr.Tab("About", id="about"):
                gr.Markdown(_about_markdown(metadata))

            with gr.Tab("Admin · Model", id="admin-model", visible=False) as tab:
                admin_tabs.append(tab)
                model_summary = gr.Markdown()
                model_metrics = gr.Dataframe(headers=["data", "n", "accuracy", "precision", "recall", "F1", "ROC-AUC",
                                                      "ECE"], interactive=False)
                model_plots = gr.Gallery(label="Test-split plots and training curves", columns=4, height=360,
                                         object_fit="contain")
                model_refresh = gr.Button("Refresh")
                model_refresh.click(admin_model, None, [model_summary, model_metrics, model_plots], api_name="admin_model")

            with gr.Tab("Admin · Evaluate", id="admin-eval", visible=False) as tab:
                admin_tabs.append(tab)
                eval_source = gr.Radio(["Official test split", "Uploaded labelled zip"], value="Official test split",
                                       label="Data")
                eval_upload = gr.File(label="Labelled zip (REAL/ and FAKE/ folders)", file_types=[".zip"])
                eval_run = gr.Button("Run evaluation", variant="primary")
                eval_metrics = gr.Dataframe(headers=["data", "n", "accuracy", "precision", "recall", "F1", "ROC-AUC",
                                                     "ECE"], interactive=False)
                eval_plots = gr.Gallery(label="Confusion matrix, ROC, reliability", columns=3, height=360,
                                        object_fit="contain")
                eval_json = gr.JSON(label="All metrics")
                eval_run.click(admin_evaluate, [eval_source, eval_upload], [eval_metrics, eval_plots, eval_json],
                               api_name="admin_evaluate", concurrency_limit=1)

            with gr.Tab("Admin · Retraining", id="admin-retrain", visible=False) as tab:
                admin_tabs.append(tab)
                gr.Markdown("Flagged verdicts wait for review; accepted images (and uploaded labelled zips) are "
                            "what retraining learns from. A new version serves only if it passes the gate.")
                feedback_gallery = gr.Gallery(label="Pending flags", columns=8, height=200)
                feedback_table = gr.Dataframe(headers=["id", "user", "kind", "claimed", "status", "image"],
                                              interactive=False)
                with gr.Row():
                    feedback_id = gr.Number(label="Feedback id", precision=0)
                    accept = gr.Button("Accept label")
                    reject = gr.Button("Reject label")
                    feedback_refresh = gr.Button("Refresh")
                labelled_zip = gr.File(label="Add a labelled zip (REAL/, FAKE/)", file_types=[".zip"])
                labelled_button = gr.Button("Add labelled images")
                labelled_msg = gr.Markdown()
                with gr.Row():
                    retrain_steps = gr.Number(label="Fine-tuning steps", value=300, precision=0)
                    retrain_button = gr.Button("Retrain", variant="primary")
                    cancel_button = gr.Button("Cancel", variant="stop")
                retrain_status = gr.Markdown()
                versions_table = gr.Dataframe(headers=["version", "active", "parent", "created", "test accuracy",
                                                       "new images", "passed gate", "reason"], interactive=False)
                with gr.Row():
                    version_choice = gr.Number(label="Version", precision=0)
                    activate_button = gr.Button("Serve this version (promote / roll back)")
                    status_button = gr.Button("Refresh status")
                timer = gr.Timer(3.0, active=False)
                feedback_refresh.click(admin_feedback, None, [feedback_table, feedback_gallery], api_name="admin_feedback")
                accept.click(lambda i, request: admin_review(i, True, request), feedback_id,
                             [feedback_table, feedback_gallery], api_name="admin_accept")
                reject.click(lambda i, request: admin_review(i, False, request), feedback_id,
                             [feedback_table, feedback_gallery], api_name="admin_reject")
                labelled_button.click(admin_upload_labelled, labelled_zip, [labelled_msg, feedback_table, feedback_gallery],
                                      api_name="admin_add_labelled")
                retrain_button.click(admin_retrain, retrain_steps, retrain_status, api_name="admin_retrain").then(
                    lambda: gr.Timer(active=True), None, timer, api_visibility="private")
                cancel_button.click(admin_cancel, None, retrain_status, api_name="admin_cancel")
                status_button.click(admin_retrain_status, None, [retrain_status, versions_table],
                                    api_name="admin_retrain_status")
                timer.tick(admin_retrain_status, None, [retrain_status, versions_table], api_visibility="private")
                activate_button.click(admin_activate, version_choice, [retrain_status, versions_table],
                                      api_name="admin_activate")

            with gr.Tab("Admin · Users", id="admin-users", visible=False) as tab:
                admin_tabs.append(tab)
                users_table = gr.Dataframe(headers=["user", "role", "status", "full name", "e-mail"], interactive=False)
                with gr.Row():
                    new_user = gr.Textbox(label="User name")
                    new_password = gr.Textbox(label=f"Password (≥ {MIN_PASSWORD} characters)", type="password")
                    new_role = gr.Radio(["user", "admin"], value="user", label="Role")
                with gr.Row():
                    create_button = gr.Button("Create user", variant="primary")
                    disable_button = gr.Button("Disable user")
                    enable_button = gr.Button("Enable user")
                    reset_button = gr.Button("Reset password to the one above")
                users_msg = gr.Markdown()
                users_refresh = gr.Button("Refresh")
                users_refresh.click(admin_users, None, users_table, api_name="admin_users")
                create_button.click(admin_create_user, [new_user, new_password, new_role], [users_msg, users_table],
                                    api_name="admin_create_user")
                disable_button.click(lambda u, request: admin_set_disabled(u, True, request), new_user,
                                     [users_msg, users_table], api_name="admin_disable_user")
                enable_button.click(lambda u, request: admin_set_disabled(u, False, request), new_user,
                                    [users_msg, users_table], api_name="admin_enable_user")
                reset_button.click(admin_reset_password, [new_user, new_password], [users_msg, users_table],
                                   api_name="admin_reset_password")

        # API-only endpoints (hidden components give them file handling and a documented schema)
        with gr.Row(visible=False):
            api_image = gr.File(label="image", type="filepath")
            api_method = gr.Textbox(label="method", value="Grad-CAM")
            api_label = gr.Textbox(label="label")
            api_prob = gr.Number(label="probability")
            api_conf = gr.Number(label="confidence")
            api_expl = gr.Textbox(label="explanation")
            api_heat = gr.Image(label="heatmap", format="png", type="pil")
            api_json = gr.File(label="result")
            api_history_out = gr.JSON(label="history")
            api_button = gr.Button()
            api_button.click(api_predict, api_image, [api_label, api_prob, api_conf, api_expl], api_name="predict",
                             concurrency_limit=settings.classify_concurrency, concurrency_id="classify")
            api_button.click(api_predict_heatmap, [api_image, api_method],
                             [api_label, api_prob, api_conf, api_expl, api_heat, api_json],
                             api_name="predict_heatmap", concurrency_limit=settings.classify_concurrency,
                             concurrency_id="heatmap")
            api_button.click(api_history, None, api_history_out, api_name="history")

        demo.load(page_load, None, [header, *admin_tabs], api_visibility="private")
        demo.load(load_history, None, [history_title, history_table, history_gallery, history_csv],
                  api_visibility="private")
        demo.load(load_profile, None, [profile_who, full_name, email, mobile, age, address, picture_show],
                  api_visibility="private")
    return demo


def _iter_batch_sources(paths: list[str]):
    for path in paths:
        if path.lower().endswith(".zip") and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if not info.is_dir() and Path(info.filename).suffix.lower() in IMAGE_TYPES:
                        if info.file_size > 50 * 2**20:
                            continue
                        yield info.filename, archive.read(info)
        else:
            yield Path(path).name, path


def _status_markdown(status: dict) -> str:
    state = status.get("state", "idle")
    progress = status.get("progress")
    text = f"**Retraining:** {state}"
    if progress is not None and state == "running":
        text += f" — {progress * 100:.0f} %"
    if status.get("message"):
        text += f" — {status['message']}"
    return text


def _about_markdown(metadata: dict) -> str:
    test = metadata.get("metrics", {}).get("test", {})
    accuracy = f"{test['accuracy'] * 100:.2f} %" if test else "n/a"
    return f"""
## What this model can and cannot do

It was trained on **CIFAKE** (Bird & Lotfi 2024): 32×32 pictures — real ones from CIFAR-10 (photos of
planes, cars, birds, cats, deer, dogs, frogs, horses, ships and trucks, collected around 2008) and
AI-generated ones made with **Stable Diffusion 1.4** for the same ten classes. On the official CIFAKE test
split it is right {accuracy} of the time.

- **Every picture is squashed to 32×32** before the model looks at it. A 12-megapixel photo loses almost
  all of its detail; the verdict on large pictures is less reliable, and the explanation says so.
- It learned *CIFAR-10 photos versus Stable Diffusion 1.4 pictures*, not "camera versus any generator".
  Pictures from other generators (Midjourney, DALL·E, newer Stable Diffusion) and real photos unlike
  CIFAR-10 are outside what it knows; when its features show that, it answers **Uncertain** instead.
- The probabilities are calibrated (Platt scaling) on held-out CIFAKE pictures: on such pictures,
  "80 %" is right about 80 % of the time. Off that domain no calibration holds.
- A heatmap shows what drove *this* verdict, not proof. The faithfulness check under it says how much the
  highlighted pixels really mattered.

### Verdict bands, measured on the CIFAKE test split

{_bands_markdown(metadata)}

### Citation
Bird, J.J., Lotfi, A. (2024). *CIFAKE: Image Classification and Explainable Identification of
AI-Generated Synthetic Images.* IEEE Access 12, 15642–15650. arXiv:2303.14126.
Dataset: Kaggle "CIFAKE: Real and AI-Generated Synthetic Images" (real images © CIFAR-10, Krizhevsky & Hinton 2009).
"""


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    service = DetectorService(settings.data_dir, settings.database_url)
    generated = service.store.ensure_admin()
    if generated:
        user = os.environ.get("CIFAKE_ADMIN_USER", "admin")
        print(f"\n*** First start: created admin '{user}' with password: {generated}\n"
              "*** It is shown only this once; change it under Profile.\n", flush=True)
    if settings.warm_up:
        service.warm_up()
    demo = build_app(service, settings)
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=2)
    launch_kwargs = dict(auth=service.store.authenticate, auth_message="Sign in to the CIFAKE detector.",
                         max_file_size=f"{settings.max_file_mb}mb", show_error=True,
                         allowed_paths=[str(service.folder / "images"), str(service.folder / "profiles"),
                                        str(service.registry.root), str(service.registry.shipped_dir)])
    try:
        import mcp  # noqa: F401 - gradio[mcp] installed: also serve the API as MCP tools

        launch_kwargs["mcp_server"] = True
    except ImportError:
        pass
    if settings.allow_signup:
        _launch_with_signup(demo, service, launch_kwargs)
    else:
        demo.launch(**launch_kwargs)


def _launch_with_signup(demo: gr.Blocks, service: DetectorService, launch_kwargs: dict) -> None:
    """Self-registration on: a /signup page beside the app (FastAPI), then the app mounted at /."""
    import uvicorn
    from fastapi import FastAPI, Form
    from fastapi.responses import HTMLResponse

    server = FastAPI()
    form = ("<form method='post'><h2>Create an account</h2><p>{msg}</p><input name='username' placeholder='user name'>"
            f"<input name='password' type='password' placeholder='password (≥ {MIN_PASSWORD} characters)'>"
            "<button>Sign up</button></form><p><a href='/'>Sign in</a></p>")

    @server.get("/signup", response_class=HTMLResponse)
    def signup_page():
        return form.format(msg="")

    @server.post("/signup", response_class=HTMLResponse)
    def signup(username: str = Form(...), password: str = Form(...)):
        try:
            service.store.create_user(username, password, role="user")
        except AccountError as err:
            return HTMLResponse(form.format(msg=str(err)), status_code=400)
        return HTMLResponse("<p>Account created. <a href='/'>Sign in</a></p>")

    mount_kwargs = {k: v for k, v in launch_kwargs.items() if k in ("auth", "auth_message", "max_file_size",
                                                                    "show_error", "allowed_paths", "mcp_server")}
    app = gr.mount_gradio_app(server, demo, path="/", **mount_kwargs)
    uvicorn.run(app, host=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))


if __name__ == "__main__":
    main()
