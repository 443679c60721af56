"""Everything a user owns points at users.id (a deleted user's history no longer passes to the next account
of that name), and unique indexes on the case-folded user name and e-mail make the database refuse case
twins even when two registrations race (issue 20).

Twins that the race already let in keep their accounts: the older one keeps the plain key, a younger
one's user-name key gets "#<id>" (sign-in by that name finds the older, as it did before) and its e-mail
key is cleared (sign-in by that address finds the older, as before; its owner can set the address again
once the twin is gone).

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OWNED = ("sessions", "api_tokens", "reset_tokens", "predictions", "feedback")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("username_key", sa.String(60), nullable=True))
        batch.add_column(sa.Column("email_key", sa.String(120), nullable=True))
    conn = op.get_bind()
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("username", sa.String),
                     sa.column("email", sa.String), sa.column("username_key", sa.String),
                     sa.column("email_key", sa.String))
    names, emails = set(), set()
    for user_id, username, email in conn.execute(sa.select(users.c.id, users.c.username, users.c.email)
                                                 .order_by(users.c.id)).all():
        name_key = username.lower() if username.lower() not in names else f"{username.lower()}#{user_id}"
        email_key = (email or "").casefold() or None
        email_key = email_key if email_key not in emails else None
        names.add(name_key)
        emails.add(email_key)
        conn.execute(users.update().where(users.c.id == user_id).values(username_key=name_key, email_key=email_key))
    with op.batch_alter_table("users") as batch:
        batch.alter_column("username_key", existing_type=sa.String(60), nullable=False)
        batch.create_index("ix_users_username_key", ["username_key"], unique=True)
        batch.create_index("ix_users_email_key", ["email_key"], unique=True)
    for table in OWNED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("user_id", sa.Integer, nullable=True))
            batch.create_index(f"ix_{table}_user_id", ["user_id"])
        op.execute(f"UPDATE {table} SET user_id = (SELECT users.id FROM users WHERE users.username = {table}.username)")


def downgrade() -> None:
    for table in OWNED:
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_user_id")
            batch.drop_column("user_id")
    with op.batch_alter_table("users") as batch:
        batch.drop_index("ix_users_email_key")
        batch.drop_index("ix_users_username_key")
        batch.drop_column("email_key")
        batch.drop_column("username_key")
