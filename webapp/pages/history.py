"""History: the user's predictions (admins: everyone's), newest first, shown as soon as the tab opens."""
from __future__ import annotations

import html
import io
from datetime import datetime

import gradio as gr

from inference.csvsafe import write_rows
from webapp.context import VERDICT_TEXT, AppContext
from webapp.pages import Page

HEADER = ["id", "time", "user", "file", "verdict", "confidence", "band", "model", "via"]
API_FIELDS = ("id", "created_at", "username", "file_name", "label", "p_fake", "confidence", "band",
              "model_version", "source")


def history_records(ctx: AppContext, user) -> list[dict]:
    return ctx.service.store.history(None if user.is_admin else user.username)


def gallery_html(records: list[dict]) -> str:
    """The pictures come from /media/thumbnail/<id>, which checks the owner (never an open Gradio file URL)."""
    figures = "".join(
        f'<figure style="margin:0;text-align:center"><img src="/media/thumbnail/{int(r["id"])}" alt="" '
        f'style="height:96px" loading="lazy"><figcaption style="font-size:.75rem">'
        f'{html.escape(r["file_name"])} · {VERDICT_TEXT.get(r["label"], "")} {r["confidence"] * 100:.0f} %'
        "</figcaption></figure>" for r in records)
    return f'<div style="display:flex;flex-wrap:wrap;gap:.5rem">{figures}</div>' if figures else ""


def build(ctx: AppContext) -> Page:
    def load_history(request: gr.Request):
        user = ctx.user(request)
        if user is None:
            return "", [], [], None
        records = history_records(ctx, user)
        rows = [[r["id"], datetime.fromtimestamp(r["created_at"]).strftime("%Y-%m-%d %H:%M:%S"), r["username"] or "(deleted)",
                 r["file_name"], VERDICT_TEXT.get(r["label"], r["label"]), round(r["confidence"], 4), r["band"],
                 r["model_version"], r["source"]] for r in records]
        gallery = gallery_html([r for r in records[:40] if r["thumbnail"]])
        buffer = io.StringIO()
        write_rows(buffer, HEADER, rows)
        title = "All users' predictions (admin view)" if user.is_admin else "Your predictions"
        return f"### {title}", rows, gallery, ctx.temp.write(buffer.getvalue().encode(), ".csv", "cifake-history-")

    with gr.Tab("History", id="history") as tab:
        title = gr.Markdown(elem_id="history-title")
        gallery = gr.HTML(label="Recent pictures", elem_id="history-gallery")
        table = gr.Dataframe(headers=HEADER, interactive=False, elem_id="history-table")
        csv_file = gr.File(label="Export (CSV)", interactive=False)
        refresh = gr.Button("Refresh", size="sm")
        refresh.click(load_history, None, [title, table, gallery, csv_file], api_visibility="private")
    return Page(tab, "member", [(load_history, [title, table, gallery, csv_file])])
