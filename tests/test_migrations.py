"""Alembic migrations: a data folder made by the release before migrations (commit 3a17a16) upgrades in
place with its data intact, and the migrations build exactly the tables the code declares."""
import json
import time

import sqlalchemy as sa

from conftest import EXPORTED
from db_fixtures import database_url  # noqa: F401 (fixture)
from webapp import migrations, state  # noqa: F401 (state's table belongs to the store's metadata)
from webapp.store import Store, hash_password, metadata

PASSWORD = "release-password-1"


def release_tables() -> sa.MetaData:
    """The tables exactly as `inference/store.py` declared them at commit 3a17a16."""
    old = sa.MetaData()
    sa.Table("users", old,
             sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("username", sa.String(40), unique=True, nullable=False),
             sa.Column("password_hash", sa.String(200), nullable=False),
             sa.Column("role", sa.String(10), nullable=False),
             sa.Column("disabled", sa.Boolean, nullable=False, default=False),
             sa.Column("full_name", sa.String(120), default=""),
             sa.Column("email", sa.String(120), default=""),
             sa.Column("mobile", sa.String(40), default=""),
             sa.Column("age", sa.Integer, nullable=True),
             sa.Column("address", sa.String(300), default=""),
             sa.Column("picture", sa.String(300), default=""),
             sa.Column("created_at", sa.Float, nullable=False))
    sa.Table("login_failures", old,
             sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("username", sa.String(40), index=True, nullable=False),
             sa.Column("at", sa.Float, nullable=False))
    sa.Table("predictions", old,
             sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("username", sa.String(40), index=True, nullable=False),
             sa.Column("created_at", sa.Float, nullable=False),
             sa.Column("file_name", sa.String(300), default=""),
             sa.Column("label", sa.String(12), nullable=False),
             sa.Column("p_fake", sa.Float, nullable=False),
             sa.Column("confidence", sa.Float, nullable=False),
             sa.Column("band", sa.String(12), nullable=False),
             sa.Column("model_version", sa.Integer, nullable=True),
             sa.Column("image_path", sa.String(300), default=""),
             sa.Column("thumbnail", sa.LargeBinary, nullable=True),
             sa.Column("source", sa.String(12), default="ui"))
    sa.Table("feedback", old,
             sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("prediction_id", sa.Integer, sa.ForeignKey("predictions.id"), nullable=True),
             sa.Column("username", sa.String(40), nullable=False),
             sa.Column("claimed_label", sa.String(4), nullable=False),
             sa.Column("kind", sa.String(10), nullable=False),
             sa.Column("status", sa.String(10), nullable=False, default="pending"),
             sa.Column("image_path", sa.String(300), nullable=False),
             sa.Column("created_at", sa.Float, nullable=False),
             sa.Column("reviewed_by", sa.String(40), nullable=True))
    return old


def make_release_data_folder(folder) -> None:
    """What the release leaves behind: its SQLite file (WAL) with an admin, a user, history, feedback,
    and active.json naming version 1."""
    folder.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(f"sqlite:///{folder / 'cifake.sqlite3'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    old = release_tables()
    old.create_all(engine)
    t = old.tables
    now = time.time()
    with engine.begin() as conn:
        for name, role in (("admin", "admin"), ("carol", "user")):
            conn.execute(t["users"].insert().values(username=name, password_hash=hash_password(PASSWORD), role=role,
                                                    disabled=False, email=f"{name}@example.org", age=41,
                                                    created_at=now))
        conn.execute(t["login_failures"].insert().values(username="carol", at=now))
        conn.execute(t["predictions"].insert().values(
            username="carol", created_at=now, file_name="cat.jpg", label="REAL", p_fake=0.12, confidence=0.88,
            band="leaning", model_version=1, image_path="images/abc.png", thumbnail=b"\x89PNG...", source="ui"))
        conn.execute(t["feedback"].insert().values(
            prediction_id=1, username="carol", claimed_label="FAKE", kind="wrong", status="pending",
            image_path="images/abc.png", created_at=now))
    engine.dispose()
    (folder / "models").mkdir()
    (folder / "models" / "active.json").write_text(json.dumps({"version": 1, "by": "admin", "at": now}))


def test_a_release_data_folder_upgrades_in_place_and_keeps_its_data(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    make_release_data_folder(folder)
    monkeypatch.delenv("CIFAKE_DATABASE_URL", raising=False)
    store = Store(folder=folder)
    assert migrations.current_revision(store.engine) == migrations.head_revision()
    assert store.authenticate("carol", PASSWORD) and store.get_user("admin").is_admin
    assert store.get_user("carol").profile["email"] == "carol@example.org"
    history = store.history("carol")
    assert [(r["file_name"], r["label"], r["thumbnail"]) for r in history] == [("cat.jpg", "REAL", b"\x89PNG...")]
    assert [(f["claimed_label"], f["status"], f["prediction_id"]) for f in store.list_feedback()] == [
        ("FAKE", "pending", history[0]["id"])]
    from webapp.registry import Registry

    assert Registry(folder / "models", EXPORTED, store.engine).active_version() == 1
    store.engine.dispose()
    assert migrations.current_revision(Store(folder=folder).engine) == migrations.head_revision()  # restart: no-op


def test_migrations_build_the_tables_the_code_declares(database_url):
    """Add a migration (webapp/migrations/versions/) with every change to the tables in webapp/store.py."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = sa.create_engine(database_url)
    migrations.upgrade(engine)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert differences == [], "the migrations and webapp/store.py disagree; write a migration for:\n" + "\n".join(
        map(str, differences))
