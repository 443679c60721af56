"""The tables of the release before migrations (commit 3a17a16): users, login failures, history, feedback.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(40), unique=True, nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("full_name", sa.String(120)),
        sa.Column("email", sa.String(120)),
        sa.Column("mobile", sa.String(40)),
        sa.Column("age", sa.Integer, nullable=True),
        sa.Column("address", sa.String(300)),
        sa.Column("picture", sa.String(300)),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(40), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_login_failures_username", "login_failures", ["username"])
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(40), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("file_name", sa.String(300)),
        sa.Column("label", sa.String(12), nullable=False),
        sa.Column("p_fake", sa.Float, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("band", sa.String(12), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=True),
        sa.Column("image_path", sa.String(300)),
        sa.Column("thumbnail", sa.LargeBinary, nullable=True),
        sa.Column("source", sa.String(12)),
    )
    op.create_index("ix_predictions_username", "predictions", ["username"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("prediction_id", sa.Integer, sa.ForeignKey("predictions.id"), nullable=True),
        sa.Column("username", sa.String(40), nullable=False),
        sa.Column("claimed_label", sa.String(4), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("image_path", sa.String(300), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("reviewed_by", sa.String(40), nullable=True),
    )


def downgrade() -> None:
    for table in ("feedback", "predictions", "login_failures", "users"):
        op.drop_table(table)
