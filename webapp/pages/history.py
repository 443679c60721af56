"""History: the user's predictions (admins: everyone's), newest first, shown as soon as the tab opens.

Captioned thumbnails of the recent ones, a table with confidences in % and each flag's status, and a
click on a row reopens that result (the stored 32×32 input, served by /media with an owner check)."""
from __future__ import annotations

import html
import io
from datetime import datetime

import gradio as gr

from inference.csvsafe import write_rows
from webapp.actions import history_records
from webapp.context import VERDICT_TEXT, AppContext, clicked_row
from webapp.pages import Page
from webapp.views import card_html

HEADER = ["id", "time", "user", "file", "verdict", "confidence", "band", "your flag", "model", "via"]
FLAG_TEXT = {"pending": "waiting for review", "accepted": "accepted", "rejected": "rejected"}


def flag_text(item: dict | None) -> str:
    if item is None:
        return ""
    if item["kind"] == "confirm":
        return "confirmed"
    return f"says {VERDICT_TEXT[item['claimed_label']].lower()} · {FLAG_TEXT.get(item['status'], item['status'])}"


def gallery_html(records: list[dict]) -> str:
    """The pictures come from /media/thumbnail/<id>, which checks the owner (never an open Gradio file URL)."""
    figures = "".join(
        f'<figure class="history-item"><img src="/media/thumbnail/{int(r["id"])}" alt="{html.escape(r["file_name"])}" '
        f'loading="lazy"><figcaption>{html.escape(r["file_name"])}<br><b>{VERDICT_TEXT.get(r["label"], "")}</b> '
        f'{r["confidence"] * 100:.0f} %</figcaption></figure>' for r in records)
    return f'<div class="history-gallery">{figures}</div>' if figures else ""


def record_html(record: dict, flag: dict | None) -> str:
    """One past result, reopened: the stored input and its verdict."""
    when = datetime.fromtimestamp(record["created_at"]).strftime("%Y-%m-%d %H:%M")
    flagged = f" · your flag: {flag_text(flag)}" if flag else ""
    return card_html(record["label"], record["band"], f"/media/input/{int(record['id'])}", record["file_name"],
                     VERDICT_TEXT.get(record["label"], record["label"]),
                     f"Confidence {record['confidence'] * 100:.1f} % ({record['band']})",
                     f"P(AI-generated) {record['p_fake'] * 100:.1f} %{flagged}",
                     f"{record['file_name']} · {when} · model v{record['model_version']}")


def build(ctx: AppContext) -> Page:
    def load_history(request: gr.Request):
        user = ctx.user(request)
        if user is None:
            return "", [], [], None
        records = history_records(ctx, user)
        flags = ctx.service.store.feedback_for_predictions([r["id"] for r in records])
        rows = [[r["id"], datetime.fromtimestamp(r["created_at"]).strftime("%Y-%m-%d %H:%M:%S"), r["username"] or "(deleted)",
                 r["file_name"], VERDICT_TEXT.get(r["label"], r["label"]), f"{r['confidence'] * 100:.1f} %", r["band"],
                 flag_text(flags.get(r["id"])), r["model_version"], r["source"]] for r in records]
        gallery = gallery_html([r for r in records[:24] if r["thumbnail"]])
        buffer = io.StringIO()
        write_rows(buffer, HEADER, rows)
        title = "All users' predictions (admin view)" if user.is_admin else "Your predictions"
        title += " — click a row to reopen its result"
        return f"### {title}", rows, gallery, ctx.temp.write(buffer.getvalue().encode(), ".csv", "cifake-history-")

    def reopen(table, evt: gr.SelectData, request: gr.Request):
        user = ctx.require_user(request)
        row = clicked_row(table, evt)
        if row is None:
            return gr.skip()
        record = ctx.service.store.get_prediction(int(row[0]))
        if record is None or (not user.is_admin and record["username"] != user.username):
            return "That result is gone."
        flag = ctx.service.store.feedback_for_predictions([record["id"]]).get(record["id"])
        return record_html(record, flag)

    with gr.Tab("History", id="history") as tab:
        title = gr.Markdown(elem_id="history-title")
        reopened = gr.HTML(elem_id="history-reopened")
        gallery = gr.HTML(label="Recent pictures", elem_id="history-gallery")
        table = gr.Dataframe(headers=HEADER, interactive=False, elem_id="history-table")
        csv_file = gr.File(label="Export (CSV)", interactive=False)
        refresh = gr.Button("Refresh", size="sm")
        refresh.click(load_history, None, [title, table, gallery, csv_file], api_visibility="private")
        table.select(reopen, table, reopened, api_visibility="private")
    return Page(tab, "member", [(load_history, [title, table, gallery, csv_file])])
