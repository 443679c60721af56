"""Admin · Retraining: review flagged verdicts by clicking the picture, add labelled zips, retrain, and
choose the served version from a list."""
from __future__ import annotations

import re

import gradio as gr

from webapp.actions import load_labelled_upload, stored_picture
from webapp.context import VERDICT_TEXT, AppContext
from webapp.pages import Page, admin_loader
from webapp.store import AccountError

FEEDBACK_HEADERS = ["id", "user", "kind", "claimed", "status", "picture", "model said"]
VERSION_HEADERS = ["version", "active", "parent", "created", "test accuracy", "new images", "passed gate", "reason"]
LABELLED_MAX_PICTURES = 5000


def status_markdown(status: dict) -> str:
    state = status.get("state", "idle")
    progress = status.get("progress")
    text = f"**Retraining:** {state}"
    if progress is not None and state == "running":
        text += f" — {progress * 100:.0f} %"
    if status.get("message"):
        text += f" — {status['message']}"
    return text


def _model_said(record: dict | None) -> tuple[str, str]:
    """(file name, the verdict and confidence) of the prediction a flag is about; labelled uploads have none."""
    if record is None:
        return "(labelled upload)", "—"
    return record["file_name"], f"{VERDICT_TEXT.get(record['label'], record['label'])} {record['confidence'] * 100:.0f} %"


class RetrainingActions:
    """The page's handlers (each checks that an admin calls); `build` lays the page out and wires them."""

    def __init__(self, ctx: AppContext):
        self.ctx, self.service, self.store = ctx, ctx.service, ctx.service.store

    def admin_feedback(self, request: gr.Request):
        self.ctx.require_admin(request)
        items = self.store.list_feedback()
        said = {f["id"]: _model_said(self.store.get_prediction(f["prediction_id"]) if f["prediction_id"] else None)
                for f in items}
        rows = [[f["id"], f["username"], f["kind"], f["claimed_label"], f["status"], said[f["id"]][0],
                 said[f["id"]][1]] for f in items]
        pending = [(image, f"#{f['id']} · {f['username']} says {f['claimed_label']} · model said {said[f['id']][1]}"
                           f" · {said[f['id']][0]}") for f in items
                   if f["status"] == "pending" and (image := stored_picture(self.ctx, f["image_path"])) is not None]
        return rows, pending

    def review(self, feedback_id, accept: bool, request: gr.Request):
        admin = self.ctx.require_admin(request)
        try:
            self.store.review_feedback(int(feedback_id), accept, admin.username)
        except (AccountError, TypeError, ValueError) as err:
            raise gr.Error(f"Flag #{feedback_id}: {err}") from None
        return self.admin_feedback(request)

    def admin_accept(self, feedback_id, request: gr.Request):
        """Accept a flagged label (by feedback id): the picture joins the retraining data."""
        return self.review(feedback_id, True, request)

    def admin_reject(self, feedback_id, request: gr.Request):
        """Reject a flagged label (by feedback id)."""
        return self.review(feedback_id, False, request)

    def select_flag(self, event: gr.SelectData, request: gr.Request):
        self.ctx.require_admin(request)
        caption = (event.value or {}).get("caption", "") if isinstance(event.value, dict) else ""
        match = re.match(r"#(\d+)", caption or "")
        if not match:
            return gr.skip(), "Click a picture to select its flag."
        return int(match.group(1)), f"Selected flag **#{match.group(1)}**: {caption[len(match.group(0)) + 3:]}"

    def admin_add_labelled(self, upload, request: gr.Request):
        admin = self.ctx.require_admin(request)
        try:
            split = load_labelled_upload(self.ctx, upload, LABELLED_MAX_PICTURES)
            count = self.service.add_labelled_images(admin.username, split.images, split.labels)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        return f"Added {count} labelled images (accepted).", *self.admin_feedback(request)

    def admin_retrain_preview(self, steps, request: gr.Request):
        """What Retrain would do, to confirm first: how many accepted pictures of each class it learns
        from. The confirm button shows only when there is something to learn and no run is going."""
        self.ctx.require_admin(request)
        labels = list(self.service.accepted_labels().values())
        if self.service.retrain_status().get("state") == "running":
            text, ok = "A retraining run is already in progress; wait for it or cancel it.", False
        elif not labels:
            text, ok = "There are no accepted pictures to learn from yet: accept flags or add a labelled zip.", False
        else:
            n, fake = len(labels), labels.count("FAKE")
            text, ok = (f"Retrain v{self.service.registry.active_version()} on **{n} accepted picture{'s' * (n != 1)}** "
                        f"({n - fake} REAL, {fake} FAKE) for {int(steps) if steps else 'the default number of'} "
                        "steps? The current version keeps serving; the new one serves only if it passes the gate."
                        + (" So few pictures teach little; the gate will probably keep the current version."
                           if n < 20 else ""), True)
        return text, gr.Button(visible=ok), gr.Button(visible=ok)

    def admin_retrain(self, steps, request: gr.Request):
        admin = self.ctx.require_admin(request)
        try:
            self.service.start_retrain(admin.username, int(steps) if steps else None)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        return status_markdown(self.service.retrain_status())

    def hide_confirmation(self):
        return "", gr.Button(visible=False), gr.Button(visible=False)

    def admin_retrain_status(self, request: gr.Request):
        self.ctx.require_admin(request)
        return status_markdown(self.service.retrain_status()), self.service.registry.describe_rows()

    def admin_cancel(self, request: gr.Request):
        self.ctx.require_admin(request)
        return "Cancelled." if self.service.cancel_retrain() else "No retraining run is in progress."

    def admin_activate(self, version, request: gr.Request):
        admin = self.ctx.require_admin(request)
        try:
            self.service.activate(int(version), admin.username, "set by an admin")
        except (ValueError, TypeError) as err:
            raise gr.Error(str(err)) from None
        return f"Model v{int(version)} is now serving.", self.service.registry.describe_rows()

    def version_choices(self, request: gr.Request):
        self.ctx.require_admin(request)
        rows = self.service.registry.describe()
        choices = [(f"v{r['version']}" + (" (serving)" if r["active"] else "") + (f" — {r.get('reason')}"
                    if r.get("reason") else ""), r["version"]) for r in rows]
        return gr.Dropdown(choices=choices, value=self.service.registry.active_version())

    def open_page(self, request: gr.Request):
        return (*self.admin_feedback(request), *self.admin_retrain_status(request), self.version_choices(request))

    def start_timer(self):
        return gr.Timer(active=True)


def build(ctx: AppContext) -> Page:
    actions = RetrainingActions(ctx)

    with gr.Tab("Admin · Retraining", id="admin-retrain") as tab:
        gr.Markdown("Click a flagged picture, then accept or reject its label. Accepted images (and uploaded "
                    "labelled zips) are what retraining learns from; a new version serves only if it passes the gate.")
        with gr.Row():
            gallery = gr.Gallery(label="Pending flags (click one)", columns=6, height=220, allow_preview=False,
                                 elem_id="flags-gallery", scale=3)
            with gr.Column(scale=1):
                selected_text = gr.Markdown("Click a picture to select its flag.", elem_id="flag-selected")
                selected = gr.Number(label="Flag id", precision=0, elem_id="flag-id")
                accept = gr.Button("Accept label", variant="primary", elem_id="flag-accept")
                reject = gr.Button("Reject label", variant="stop", elem_id="flag-reject")
        table = gr.Dataframe(headers=FEEDBACK_HEADERS, interactive=False, elem_id="feedback-table")
        labelled_zip = gr.File(label="Add a labelled zip (REAL/, FAKE/)", file_types=[".zip"])
        labelled_button = gr.Button("Add labelled images")
        labelled_msg = gr.Markdown()
        with gr.Row():
            steps = gr.Number(label="Fine-tuning steps", value=300, precision=0)
            retrain = gr.Button("Retrain…", variant="primary", elem_id="retrain-ask")
            cancel = gr.Button("Cancel the run", variant="stop")
        with gr.Row():
            confirm_text = gr.Markdown(elem_id="retrain-confirm-text")
            confirm = gr.Button("Start retraining", variant="primary", visible=False, elem_id="retrain-confirm")
            back = gr.Button("Back", visible=False, elem_id="retrain-back")
        status = gr.Markdown(elem_id="retrain-status")
        versions = gr.Dataframe(headers=VERSION_HEADERS, interactive=False)
        with gr.Row():
            version = gr.Dropdown(label="Version to serve", choices=[], elem_id="version-choice",
                                  allow_custom_value=True)  # API callers pass a number; actions.admin_activate checks it
            activate = gr.Button("Serve this version (promote / roll back)")
            refresh = gr.Button("Refresh", size="sm")
        timer = gr.Timer(3.0, active=False)
        gallery.select(actions.select_flag, None, [selected, selected_text], api_visibility="private")
        accept.click(actions.admin_accept, selected, [table, gallery], api_name="admin_accept")
        reject.click(actions.admin_reject, selected, [table, gallery], api_name="admin_reject")
        labelled_button.click(actions.admin_add_labelled, labelled_zip, [labelled_msg, table, gallery],
                              api_name="admin_add_labelled")
        confirmation = [confirm_text, confirm, back]
        retrain.click(actions.admin_retrain_preview, steps, confirmation, api_name="admin_retrain_preview")
        back.click(actions.hide_confirmation, None, confirmation, api_visibility="private")
        confirm.click(actions.hide_confirmation, None, confirmation, api_visibility="private")
        confirm.click(actions.admin_retrain, steps, status, api_name="admin_retrain").then(
            actions.start_timer, None, timer, api_visibility="private")
        cancel.click(actions.admin_cancel, None, status, api_name="admin_cancel")
        refresh.click(actions.admin_feedback, None, [table, gallery], api_name="admin_feedback")
        refresh.click(actions.admin_retrain_status, None, [status, versions], api_name="admin_retrain_status")
        timer.tick(actions.admin_retrain_status, None, [status, versions], api_visibility="private")
        activate.click(actions.admin_activate, version, [status, versions], api_name="admin_activate").then(
            actions.version_choices, None, version, api_visibility="private")
    return Page(tab, "admin", [(admin_loader(ctx, actions.open_page, 5), [table, gallery, status, versions, version])])
