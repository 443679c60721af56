"""What users leave: contact messages, prediction history and feedback."""
from __future__ import annotations

import time

import sqlalchemy as sa

from webapp.store.schema import (AccountError, feedback, messages, predictions, _clean_profile, _is_row_id, _owned_by, _owned_predictions, _user_id)


class Records:
    # -- contact messages ----------------------------------------------------------------------------
    def add_message(self, name: str, email: str, body: str, username: str | None = None) -> int:
        name, email, body = (name or "").strip(), (email or "").strip(), (body or "").strip()
        if not body:
            raise AccountError("Write a message first.")
        if len(body) > 5000:
            raise AccountError(f"Messages may have at most 5000 characters; this one has {len(body)}.")
        _clean_profile({"email": email})  # the same e-mail check as profiles
        with self.engine.begin() as conn:
            result = conn.execute(messages.insert().values(created_at=time.time(), name=name[:120], email=email[:120],
                                                           username=username, body=body))
        return int(result.inserted_primary_key[0])

    def list_messages(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(messages).order_by(messages.c.id.desc())).mappings()]


    # -- history ---------------------------------------------------------------------------------
    def add_prediction(self, username: str, file_name: str, prediction, model_version: int | None,
                       image_path: str = "", thumbnail: bytes | None = None, source: str = "ui") -> int:
        with self.engine.begin() as conn:
            result = conn.execute(predictions.insert().values(
                username=username, user_id=_user_id(conn, username), created_at=time.time(),
                file_name=file_name[:300], label=prediction.label, p_fake=prediction.p_fake,
                confidence=prediction.confidence, band=prediction.band,
                model_version=model_version, image_path=image_path, thumbnail=thumbnail, source=source))
        return int(result.inserted_primary_key[0])

    def history(self, username: str | None = None, limit: int = 200) -> list[dict]:
        """Newest first; all users' when `username` is None (admins)."""
        query = _owned_predictions().order_by(predictions.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            if username is not None:
                query = query.where(_owned_by(predictions.c.user_id, conn, username))
            return [dict(r) for r in conn.execute(query).mappings().all()]

    def get_prediction(self, prediction_id: int) -> dict | None:
        """The record with `username` its owner's now, None when the owner is gone (ids out of range: None)."""
        if not _is_row_id(prediction_id):
            return None
        with self.engine.connect() as conn:
            row = conn.execute(_owned_predictions().where(predictions.c.id == prediction_id)).mappings().first()
        return dict(row) if row else None

    # -- feedback --------------------------------------------------------------------------------
    def add_feedback(self, username: str, claimed_label: str, image_path: str, kind: str,
                     prediction_id: int | None = None, status: str = "pending") -> int:
        if claimed_label not in ("REAL", "FAKE"):
            raise AccountError(f"The label must be REAL or FAKE; got {claimed_label!r}.")
        with self.engine.begin() as conn:
            result = conn.execute(feedback.insert().values(
                prediction_id=prediction_id, username=username, user_id=_user_id(conn, username),
                claimed_label=claimed_label, kind=kind, status=status, image_path=image_path, created_at=time.time()))
        return int(result.inserted_primary_key[0])

    def feedback_for_predictions(self, prediction_ids: list[int]) -> dict[int, dict]:
        """prediction id -> its latest feedback (claimed_label, kind, status), for the ids that have one."""
        if not prediction_ids:
            return {}
        query = sa.select(feedback.c.prediction_id, feedback.c.claimed_label, feedback.c.kind, feedback.c.status) \
            .where(feedback.c.prediction_id.in_(prediction_ids)).order_by(feedback.c.id)
        with self.engine.connect() as conn:
            return {r["prediction_id"]: dict(r) for r in conn.execute(query).mappings().all()}

    def list_feedback(self, status: str | None = None) -> list[dict]:
        query = sa.select(feedback).order_by(feedback.c.id)
        if status:
            query = query.where(feedback.c.status == status)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]

    def review_feedback(self, feedback_id: int, accept: bool, reviewer: str) -> None:
        if not _is_row_id(feedback_id):
            raise AccountError(f"There is no feedback item {feedback_id}.")
        with self.engine.begin() as conn:
            result = conn.execute(feedback.update().where(feedback.c.id == feedback_id).values(
                status="accepted" if accept else "rejected", reviewed_by=reviewer))
        if result.rowcount == 0:
            raise AccountError(f"There is no feedback item {feedback_id}.")
