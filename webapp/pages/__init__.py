"""One module per page. Each `build(ctx)` lays out its tab and wires its handlers, and returns a `Page`
saying who sees the tab and what to load when it opens (`webapp.ui` renders them into one app)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import gradio as gr

AUDIENCES = ("visitor", "everyone", "member", "admin")  # visitor: only while signed out


@dataclass
class Page:
    tab: gr.Tab
    audience: str
    loaders: list[tuple[Callable, list]] = field(default_factory=list)  # (handler, outputs) on open
    # (handler, outputs) when the app loads; the handler returns (its outputs..., open this tab?)
    on_app_load: tuple[Callable, list] | None = None

    def visible_for(self, role: str | None) -> bool:
        """role: None (visitor), "user" or "admin"."""
        return {"visitor": role is None, "everyone": True, "member": role is not None,
                "admin": role == "admin"}[self.audience]


def admin_loader(ctx, handler: Callable, n_outputs: int) -> Callable:
    """`handler` for admins when a page opens; others get nothing (and no error toast)."""
    def load(request: gr.Request):
        user = ctx.user(request)
        if user is None or not user.is_admin:
            return tuple(gr.skip() for _ in range(n_outputs)) if n_outputs > 1 else gr.skip()
        return handler(request)

    load.__name__ = f"open_{handler.__name__}"
    return load
