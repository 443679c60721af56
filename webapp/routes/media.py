"""Pictures a user owns, served only to that user and admins (never through Gradio's open
`/gradio_api/file=` URLs): profile pictures, the stored 32x32 input of a prediction, History thumbnails."""
from __future__ import annotations

import io

from fastapi import APIRouter, Request
from fastapi.responses import Response
from PIL import Image

from webapp.actions import profile_picture as load_profile_picture
from webapp.actions import stored_picture
from webapp.context import AppContext

NOT_FOUND = "Not found."  # one answer for "absent" and "not yours": no oracle


def router(ctx: AppContext) -> APIRouter:
    routes = APIRouter()
    auth, store = ctx.auth, ctx.service.store

    @routes.get("/media/profile/{username}")
    def profile_picture(username: str, request: Request):
        """A profile picture, for its owner and admins only."""
        asker = auth.user_for(request.headers, request.cookies)
        if asker is None or (asker.username != username and not asker.is_admin):
            return Response(NOT_FOUND, status_code=404)
        return png_response(load_profile_picture(ctx, username))

    def own_record(prediction_id: int, request: Request) -> dict | None:
        """A history record, if the asker is the user it belongs to or an admin."""
        asker = auth.user_for(request.headers, request.cookies)
        row = store.get_prediction(prediction_id)
        if asker is None or row is None or (row["username"] != asker.username and not asker.is_admin):
            return None
        return row

    @routes.get("/media/input/{prediction_id}")
    def stored_input(prediction_id: int, request: Request):
        """The 32x32 input of a prediction, for the user it belongs to and admins only."""
        row = own_record(prediction_id, request)
        if row is None:
            return Response(NOT_FOUND, status_code=404)
        return png_response(stored_picture(ctx, row["image_path"]) if row["image_path"] else None)

    @routes.get("/media/thumbnail/{prediction_id}")
    def thumbnail(prediction_id: int, request: Request):
        """The History page's small picture of a prediction, for its user and admins only."""
        row = own_record(prediction_id, request)
        if row is None or not row["thumbnail"]:
            return Response(NOT_FOUND, status_code=404)
        return Response(row["thumbnail"], media_type="image/png", headers={"Cache-Control": "private, no-store"})

    return routes


def png_response(image: Image.Image | None) -> Response:
    if image is None:
        return Response(NOT_FOUND, status_code=404)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return Response(buffer.getvalue(), media_type="image/png", headers={"Cache-Control": "private, no-store"})
