"""The app's database on SQLite and on a real PostgreSQL: two Store objects on one database stand for
two app processes (each has its own engine and connections), and must agree on accounts, history,
feedback and the served model version."""
import shutil
import threading

import pytest
import sqlalchemy as sa

from conftest import EXPORTED
from db_fixtures import database_url, fresh_postgres_database  # noqa: F401 (fixture)
from inference.classifier import Prediction
from webapp import migrations
from webapp.registry import Registry
from webapp.store import AccountError, Store

PASSWORD = "correct-horse-42"


@pytest.fixture
def two_stores(database_url, tmp_path):
    """Two processes' views of one database, each with its own data folder."""
    first = Store(database_url, tmp_path / "replica_a")
    second = Store(database_url, tmp_path / "replica_b")
    yield first, second
    first.engine.dispose()
    second.engine.dispose()


def test_a_user_made_on_one_replica_signs_in_on_the_other(two_stores):
    first, second = two_stores
    first.create_user("alice", PASSWORD, email="alice@example.org")
    assert second.authenticate("alice", PASSWORD)
    assert not second.authenticate("alice", "wrong-password-1")
    assert second.get_user("alice").profile["email"] == "alice@example.org"
    with pytest.raises(AccountError, match="taken"):
        second.create_user("alice", "another-password-1")
    second.set_disabled("alice", True)
    assert not first.authenticate("alice", PASSWORD)
    second.set_disabled("alice", False)
    first.set_password("alice", "a-new-password-7")
    assert second.authenticate("alice", "a-new-password-7") and not second.authenticate("alice", PASSWORD)


def test_the_first_admin_is_created_once_for_all_replicas(two_stores):
    first, second = two_stores
    assert first.ensure_admin("root", "root-password-123") is None  # a password was given: nothing generated
    assert second.ensure_admin("other", "other-password-123") is None and second.get_user("other") is None
    assert [u["username"] for u in second.list_users()] == ["root"] and second.has_admin()


def test_history_and_feedback_are_shared(two_stores):
    first, second = two_stores
    prediction = Prediction("FAKE", 0.93, 0.93, "confident", 1.5, False, "FAKE")
    thumbnail = bytes(range(256)) * 4  # binary survives (BLOB / bytea)
    first.create_user("bob", PASSWORD)  # history belongs to an account (by its id)
    record = first.add_prediction("bob", "photo – été.jpg", prediction, 2, "images/x.png", thumbnail, "api")
    rows = second.history("bob")
    assert [(r["id"], r["file_name"], r["label"], r["model_version"], r["source"]) for r in rows] == [
        (record, "photo – été.jpg", "FAKE", 2, "api")]
    assert rows[0]["thumbnail"] == thumbnail and rows[0]["p_fake"] == pytest.approx(0.93)
    assert second.history("someone-else") == []
    item = second.add_feedback("bob", "REAL", "images/x.png", "wrong", record)
    assert [f["id"] for f in first.list_feedback("pending")] == [item]
    first.review_feedback(item, accept=True, reviewer="root")
    accepted = second.list_feedback("accepted")
    assert [(f["id"], f["claimed_label"], f["reviewed_by"]) for f in accepted] == [(item, "REAL", "root")]
    with pytest.raises(AccountError, match="REAL or FAKE"):
        second.add_feedback("bob", "MAYBE", "images/x.png", "wrong", record)
    assert len(first.list_feedback()) == 1  # the refused item changed nothing


def _auths(first: Store, second: Store, policy=None):
    from webapp.auth import Auth, LoginPolicy, load_secret

    secret = load_secret(first.folder)  # the shared data folder's key (or CIFAKE_SECRET_KEY on every replica)
    policy = policy or LoginPolicy()
    return Auth(first, secret, policy=policy), Auth(second, secret, policy=policy)


def test_failed_sign_ins_on_one_replica_throttle_the_other(two_stores):
    from webapp.auth import LoginPolicy, LoginRefused

    first, second = two_stores
    first.create_user("erin", PASSWORD)
    on_first, on_second = _auths(first, second, LoginPolicy(free_failures=2, max_delay=300.0))
    for _ in range(6):
        try:
            assert on_first.sign_in("erin", "wrong-password-0", "203.0.113.9") is None
        except LoginRefused:
            pass  # already throttled on the first replica
    with pytest.raises(LoginRefused, match="try again"):
        on_second.sign_in("erin", PASSWORD, "203.0.113.9")  # the right password, but the other replica counts
    assert on_second.sign_in("erin", PASSWORD, "198.51.100.7") == "erin"  # another address is not locked out


def test_a_session_started_on_one_replica_is_valid_on_the_other(two_stores):
    from webapp.auth import SESSION_COOKIE

    first, second = two_stores
    first.create_user("frank", PASSWORD)
    on_first, on_second = _auths(first, second)
    cookie = {SESSION_COOKIE: on_first.sign(first.create_session("frank", "203.0.113.9"))}
    assert on_second.username_for({}, cookie) == "frank"
    second.end_sessions("frank")  # signing out everywhere, from the other replica
    assert on_first.username_for({}, cookie) is None


def _registry_with_two_versions(store: Store) -> Registry:
    registry = Registry(store.folder / "models", EXPORTED, store.engine)
    shutil.copytree(EXPORTED, store.folder / "models" / "v2", ignore=shutil.ignore_patterns("report"))
    return registry


def test_a_version_switch_on_one_replica_is_served_by_the_other(two_stores):
    first, second = (_registry_with_two_versions(store) for store in two_stores)  # separate data folders
    assert first.active_version() == second.active_version() == 1
    first.set_active(2, by="root", reason="better on new pictures")
    assert second.active_version() == 2  # from the database: replica B's folder has no active.json
    second.set_active(1, by="root", reason="roll back")
    assert first.active_version() == 1  # the database record is newer than replica A's active.json


def test_a_worker_that_only_writes_active_json_is_served(two_stores):
    store = two_stores[0]
    app_registry = _registry_with_two_versions(store)
    app_registry.set_active(1, by="root")
    Registry(store.folder / "models", EXPORTED).set_active(2, by="retraining")  # no database (a worker)
    assert app_registry.active_version() == 2


def test_a_fresh_database_is_at_the_newest_migration(database_url, tmp_path):
    store = Store(database_url, tmp_path)
    assert migrations.current_revision(store.engine) == migrations.head_revision()
    assert {"users", "predictions", "feedback", "app_state"} <= set(sa.inspect(store.engine).get_table_names())
    assert migrations.upgrade(store.engine) == migrations.head_revision()  # running it again changes nothing
    store.engine.dispose()


def test_replicas_starting_together_migrate_once():
    with fresh_postgres_database() as url:
        engines = [sa.create_engine(url) for _ in range(3)]
        results, errors = [], []

        def start(engine):
            try:
                results.append(migrations.upgrade(engine))
            except Exception as err:  # noqa: BLE001 (reported below)
                errors.append(err)

        threads = [threading.Thread(target=start, args=(engine,)) for engine in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for engine in engines:
            engine.dispose()
        assert errors == [] and results == [migrations.head_revision()] * 3


def test_a_starting_replica_removes_only_stale_staging_folders(tmp_path):
    import os
    import time

    root = tmp_path / "models"
    fresh, stale = root / ".retrain-run11", root / ".retrain-run12"  # another replica's export; a crash's leftover
    for folder in (fresh, stale):
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    for path in (stale / "model.onnx", stale):
        os.utime(path, (two_hours_ago, two_hours_ago))
    Registry(root, EXPORTED)
    assert fresh.exists() and not stale.exists()


def test_replicas_starting_together_create_one_admin(database_url, tmp_path):
    stores = [Store(database_url, tmp_path / f"replica_{i}") for i in range(4)]
    results, errors = [], []

    def start(store):
        try:
            results.append(store.ensure_admin("admin"))  # no password given: each would generate one
        except Exception as err:  # noqa: BLE001 (reported below)
            errors.append(err)

    threads = [threading.Thread(target=start, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len([r for r in results if r]) == 1  # one password printed, the one that works
    assert stores[0].authenticate("admin", next(r for r in results if r))
    assert [u["username"] for u in stores[1].list_users()] == ["admin"]
    for store in stores:
        store.engine.dispose()


def test_replicas_starting_together_share_one_session_key(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from webapp.auth import load_secret

    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_secret(tmp_path), range(32)))
    assert len(keys) == 1 and len(next(iter(keys))) == 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


# -- account lifecycle (issue 20) ------------------------------------------------------------------------------
def test_case_twins_registering_at_once_make_one_account(two_stores):
    first, second = two_stores
    created, refused = [], []

    def register(store, name, email):
        try:
            created.append(store.create_user(name, PASSWORD, email=email).username)
        except AccountError as err:
            refused.append(str(err))

    variants = [("rAcey", "twin@example.org"), ("racEy", "TWIN@example.org"), ("RACEY", "Twin@Example.org"),
                ("raceY", "twin@EXAMPLE.org")] * 2
    threads = [threading.Thread(target=register, args=(first if i % 2 else second, *v)) for i, v in enumerate(variants)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(created) == 1 and len(refused) == len(variants) - 1
    assert [u["username"].lower() for u in first.list_users()] == ["racey"]
    assert all("taken" in message or "belongs to another account" in message for message in refused), refused


def test_a_user_name_may_not_be_an_email_address_and_sign_in_by_email_finds_its_owner(two_stores):
    first, _ = two_stores
    with pytest.raises(AccountError, match="no @"):
        first.create_user("victim@corp.example", PASSWORD)
    first.create_user("victim", PASSWORD, email="victim@corp.example")
    with first.engine.begin() as conn:  # a squatter from before the rule: a user name that is her address
        conn.execute(sa.text("INSERT INTO users (username, username_key, password_hash, role, disabled, created_at) "
                             "VALUES ('Victim@corp.example', 'victim@corp.example', 'x', 'user', false, 0)"))
    assert first.find_username("VICTIM@corp.example") == "victim"


def test_a_deleted_users_history_tokens_and_inputs_do_not_pass_to_the_next_account_of_that_name(two_stores):
    first, second = two_stores
    first.create_user("heir", PASSWORD)
    image = first.folder / "images" / "heir-input.png"
    image.parent.mkdir(exist_ok=True)
    image.write_bytes(b"png")
    record = first.add_prediction("heir", "old.jpg", Prediction("FAKE", 0.9, 0.9, "confident", 1.0, False, "FAKE"),
                                  1, "images/heir-input.png")
    second.add_feedback("heir", "REAL", "images/other.png", "wrong", record)
    token = first.create_api_token("heir")
    first.delete_user("heir")
    second.create_user("Heir", PASSWORD)
    assert first.history("Heir") == [] and second.history("heir") == []
    assert first.get_prediction(record) is None  # its owner is gone with it
    assert first.api_token_user(token) is None and first.list_api_tokens("Heir") == []
    assert not image.exists()
    assert [(f["username"], f["user_id"]) for f in first.list_feedback()] == [("(deleted)", None)]


def test_a_new_password_revokes_the_users_api_tokens(two_stores):
    first, second = two_stores
    first.create_user("carol", PASSWORD)
    token = first.create_api_token("carol", "laptop")
    assert second.api_token_user(token) == "carol"
    second.set_password("carol", "another-password-8")
    assert first.api_token_user(token) is None and first.list_api_tokens("carol") == []


def test_numbers_out_of_range_are_no_record_rather_than_a_database_error(two_stores):
    first, _ = two_stores
    assert first.get_prediction(2**70) is None and first.get_prediction(-1) is None
    first.create_user("dave", PASSWORD)
    with pytest.raises(AccountError, match="no API token"):
        first.revoke_api_token("dave", 2**70)
    with pytest.raises(AccountError, match="no feedback item"):
        first.review_feedback(2**70, True, "dave")
