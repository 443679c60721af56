"""Alembic's entry point: migrations run on the connection `webapp.migrations.upgrade` hands over."""
from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Run migrations through webapp.migrations.upgrade (python -m webapp.migrations upgrade).")
context.configure(connection=connection, render_as_batch=True)  # batch mode: SQLite can alter tables too
with context.begin_transaction():
    context.run_migrations()
