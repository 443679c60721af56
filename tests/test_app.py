"""The real app: `python app.py` on a free port with a real SQLite file, driven with gradio_client and
over HTTP as a browser would. Every named endpoint is called by a role that may and one that may not."""
import contextlib
import re
import sqlite3
import threading
import time
import zipfile

import httpx
import pytest

from appserver import (ADMIN, USER, call_event, free_port, gradio_client, running_app, sign_in, start_server,
                       stop_server, upload)

LABELS = ("REAL", "FAKE", "UNCERTAIN")


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_cifake):
    data_dir = tmp_path_factory.mktemp("appdata")
    env = {"CIFAKE_REGISTRATIONS_PER_HOUR": "50",  # refused registrations count too; the warm-up is on (as deployed)
           "CIFAKE_VISITOR_PER_MINUTE": "100", "CIFAKE_EVAL_DATA": str(tiny_cifake)}  # every visitor here is 127.0.0.1; the limit: test_security.py
    with running_app(data_dir, env, [(*USER, "alice@example.org")]) as (url, _):
        yield url, data_dir


@pytest.fixture(scope="module")
def user_client(server):
    return gradio_client(server[0], USER)


@pytest.fixture(scope="module")
def admin_client(server):
    return gradio_client(server[0], ADMIN)


@pytest.fixture(scope="module")
def visitor_client(server):
    return gradio_client(server[0])


# -- signing in ------------------------------------------------------------------------------------
def test_sign_in_with_the_right_password_opens_the_api(server):
    client = gradio_client(server[0], ADMIN)
    assert "/predict" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]


def test_sign_in_with_the_e_mail_address(server):
    http = sign_in(server[0], "ALICE@example.org", USER[1])
    ok, history = call_event(http, "history", [])
    assert ok and isinstance(history[0], list)


def test_a_wrong_password_is_refused(server):
    response = httpx.post(server[0] + "login", data={"username": USER[0], "password": "wrong-password"})
    assert response.status_code == 401 and "Wrong user name" in response.text
    with pytest.raises(Exception, match="Invalid credentials"):
        gradio_client(server[0], (USER[0], "wrong-password"))


def test_a_browser_with_a_wrong_password_goes_back_to_the_app_with_the_name_kept(server):
    response = httpx.post(server[0] + "login", data={"username": "Alice Typo", "password": "wrong-password"},
                          headers={"Accept": "text/html"})
    assert response.status_code == 303 and response.headers["location"] == "/?signin=wrong"
    assert "cifake_signin_name=Alice%20Typo" in response.headers["set-cookie"]  # not in the URL
    assert "wrong-password" not in response.headers["location"] + response.headers["set-cookie"]


def test_the_api_needs_a_sign_in(visitor_client):
    with pytest.raises(Exception, match="Please sign in"):
        visitor_client.predict(api_name="/history")


def test_sign_out_ends_the_session(server):
    http = sign_in(server[0], *USER)
    assert call_event(http, "history", [])[0]
    assert http.post("/logout").status_code == 303
    ok, message = call_event(http, "history", [])
    assert not ok and "Please sign in" in message


def test_api_tokens_work_until_revoked(server, sample_paths):
    from gradio_client import handle_file

    http = sign_in(server[0], *USER)
    ok, (shown, tokens) = call_event(http, "create_token", ["laptop script"])
    token = shown.split("`")[1]
    assert ok and token.startswith("cft_") and tokens["data"][-1][1] == "laptop script"
    client = gradio_client(server[0], token=token)
    assert client.predict(handle_file(str(sample_paths["REAL"][0])), api_name="/predict")[0] in LABELS
    assert call_event(http, "revoke_token", [tokens["data"][-1][0]])[0]
    with pytest.raises(Exception, match="Please sign in"):
        client.predict(api_name="/history")


# -- the front door ----------------------------------------------------------------------------------
def test_a_visitor_uses_the_public_api_and_nothing_is_stored(server, sample_paths, visitor_client, user_client):
    from gradio_client import handle_file

    before = len(user_client.predict(api_name="/history"))
    label, p_fake, confidence, explanation = visitor_client.predict(handle_file(str(sample_paths["FAKE"][0])),
                                                                    api_name="/predict")
    assert label in LABELS and 0 <= p_fake <= 1 and 0.5 <= confidence <= 1 and explanation
    *_, heatmap, report = visitor_client.predict(handle_file(str(sample_paths["REAL"][0])), "HiResCAM",
                                                 api_name="/predict_heatmap")
    assert heatmap and report
    user_client.predict(handle_file(str(sample_paths["REAL"][1])), api_name="/predict")  # signed in: kept
    assert len(user_client.predict(api_name="/history")) == before + 1


def test_a_visitor_predicts_with_a_heatmap_and_nothing_is_stored(server, sample_paths, admin_client):
    before = len(admin_client.predict(api_name="/history"))
    visitor = httpx.Client(base_url=server[0], timeout=120)
    picture = upload(visitor, sample_paths["FAKE"][0])
    ok, outputs = call_event(visitor, "analyse", [picture, "Grad-CAM", "predicted class", 0.45])
    assert ok, outputs
    card, heatmap, details, small, downloads, record_id = outputs[:6]
    assert 'class="result-card' in card and "data:image/png;base64," in card and heatmap is not None
    assert "P(AI-generated)" in details and small is None and record_id is None  # 32x32: one heatmap is enough
    assert len(admin_client.predict(api_name="/history")) == before


def _registration(**changes) -> list:
    fields = dict(username="newbie", full_name="New Bie", email="newbie@example.org", mobile="+44 7700 900123",
                  age=33, address="1 Test Street", picture=None, password="river-stone-lamp-7",
                  repeat="river-stone-lamp-7")
    fields.update(changes)
    return list(fields.values())


def _registration_call(http: httpx.Client, fields: list) -> tuple[bool, str]:
    """Open the page (its load puts the form token in the session's state), then submit.
    -> (account created?, everything the form says: the result line and each field's error line)."""
    assert call_event(http, "registration_token", [], session="page-1")[0]
    ok, outputs = call_event(http, "register", fields + [None], session="page-1")
    assert ok, outputs  # refusals are shown beside the fields, never as an error toast
    return "created" in outputs[0], " ".join(o for o in outputs if o)


@pytest.mark.parametrize("changes, message", [
    ({"password": "short", "repeat": "short"}, "at least 10"),
    ({"repeat": "something-else-1"}, "passwords differ"),
    ({"password": "password123", "repeat": "password123"}, "common passwords"),
    ({"username": "ADMIN"}, "is taken"),
    ({"email": "not-an-address"}, "e-mail address"),
    ({"email": "ALICE@example.org"}, "belongs to another account"),
    ({"age": 400}, "Age must be"),
    ({"mobile": "call me"}, "mobile number"),
    ({"full_name": ""}, "full name"),
])
def test_registration_checks_each_field_with_a_clear_message(server, changes, message):
    http = httpx.Client(base_url=server[0], timeout=60)
    http.get("/")
    ok, error = _registration_call(http, _registration(**changes))
    assert not ok and message in error


def test_registration_creates_a_user_who_signs_in_with_the_e_mail(server):
    http = httpx.Client(base_url=server[0], timeout=60)
    http.get("/")
    created, said = _registration_call(http, _registration())
    assert created and "signing you in" in said
    client = gradio_client(server[0], ("newbie@example.org", "river-stone-lamp-7"))
    with pytest.raises(Exception, match="Only administrators"):
        client.predict(api_name="/admin_users")
    row = sqlite3.connect(server[1] / "cifake.sqlite3").execute(
        "select role, full_name, mobile, age, address from users where username='newbie'").fetchone()
    assert row == ("user", "New Bie", "+44 7700 900123", 33, "1 Test Street")


def test_profile_and_password_forms_say_every_problem_beside_its_field_and_change_nothing(server):
    http = sign_in(server[0], *USER)
    before = sqlite3.connect(server[1] / "cifake.sqlite3").execute(
        "select full_name, mobile, age, password_hash from users where username=?", (USER[0],)).fetchone()
    ok, (message, _, email_error, mobile_error, age_error, picture_error) = call_event(
        http, "save_profile", ["Changed Name", "alice@example.org", "call me", "four hundred", "", None])
    assert ok and "fix the fields" in message
    assert "mobile number" in mobile_error and "Age must be" in age_error and not email_error and not picture_error
    ok, (message, *boxes, current_error, new_error, repeat_error) = call_event(
        http, "change_password", ["not-my-password", "short", "short"])
    assert ok and "fix the fields" in message
    assert "current password is wrong" in current_error and "at least 10" in new_error and not repeat_error
    after = sqlite3.connect(server[1] / "cifake.sqlite3").execute(
        "select full_name, mobile, age, password_hash from users where username=?", (USER[0],)).fetchone()
    assert after == before


def _hold_a_heartbeat(url: str) -> None:
    """Open the stream every browser tab holds (Gradio's heartbeat) and return once it is flowing."""
    flowing = threading.Event()

    def listen():
        with contextlib.suppress(httpx.HTTPError), httpx.stream("GET", f"{url}gradio_api/heartbeat/tab1",
                                                                 timeout=120) as stream:
            for _ in stream.iter_lines():
                flowing.set()

    threading.Thread(target=listen, daemon=True).start()
    assert flowing.wait(60), "no heartbeat"


@pytest.fixture(scope="module")
def two_starts(tmp_path_factory):
    """One data folder started twice: first without an admin password, then again with registration
    closed, stopped while a tab's heartbeat stream is open (with 30 s allowed for open requests).
    Returns (folder, first start's log, second start's log, second start's /config, seconds to stop)."""
    folder, port = tmp_path_factory.mktemp("twostarts"), free_port()
    env = {"CIFAKE_ADMIN_PASSWORD": "", "CIFAKE_WARMUP": "0"}
    stop_server(start_server(folder, port, env))
    first_log = (folder / "server.log").read_text()
    process = start_server(folder, port, {**env, "CIFAKE_ALLOW_SIGNUP": "0", "CIFAKE_SHUTDOWN_SECONDS": "30"})
    try:
        config = httpx.get(f"http://127.0.0.1:{port}/config").text
        _hold_a_heartbeat(f"http://127.0.0.1:{port}/")
    finally:
        started = time.monotonic()
        stop_server(process)
    return folder, first_log, (folder / "server.log").read_text(), config, time.monotonic() - started


def test_a_stop_ends_the_open_tabs_streams_at_once_and_quietly(two_starts):
    *_, second_log, _, stop_seconds = two_starts
    assert stop_seconds < 10, f"{stop_seconds:.1f} s: the stop waited for the heartbeat stream"
    assert "Traceback" not in second_log and "ERROR" not in second_log, second_log


def test_registration_can_be_closed(two_starts):
    config = two_starts[3]
    assert "Registration is closed here" in config  # the Register tab says so ...
    assert '"api_name": "register"' not in config.replace('":"', '": "')  # ... and has no form to submit


def test_contact_messages_reach_the_admins(server, admin_client):
    visitor = httpx.Client(base_url=server[0], timeout=60)
    visitor.get("/")
    ok, _ = call_event(visitor, "send_message", ["Vera Visitor", "vera@example.org", "Is a 4K photo judged fairly?"])
    assert ok
    messages = admin_client.predict(api_name="/admin_messages")["data"]
    assert ["Vera Visitor", "vera@example.org", "", "Is a 4K photo judged fairly?"] in [m[2:] for m in messages]


# -- predictions -------------------------------------------------------------------------------------
@pytest.mark.parametrize("label", ["FAKE", "REAL"])
def test_predict_returns_the_models_verdict(user_client, sample_paths, classifier, label):
    from gradio_client import handle_file

    path = sample_paths[label][0]
    verdict, probability, confidence, explanation = user_client.predict(handle_file(str(path)), api_name="/predict")
    expected = classifier.predict(path)
    assert verdict == expected.label
    assert probability == pytest.approx(expected.p_fake, abs=1e-5)
    assert confidence == pytest.approx(expected.confidence, abs=1e-5)
    assert "P(AI-generated)" in explanation


def test_a_text_file_gets_a_readable_error(user_client, tmp_path):
    from gradio_client import handle_file

    fake = tmp_path / "notes.jpg"
    fake.write_text("not an image")
    with pytest.raises(Exception, match="not a picture"):
        user_client.predict(handle_file(str(fake)), api_name="/predict")


def test_history_shows_a_prediction_at_once(user_client, sample_paths):
    from gradio_client import handle_file

    before = len(user_client.predict(api_name="/history"))
    user_client.predict(handle_file(str(sample_paths["REAL"][1])), api_name="/predict")
    history = user_client.predict(api_name="/history")
    assert len(history) == before + 1
    assert history[0]["username"] == USER[0] and history[0]["file_name"] == sample_paths["REAL"][1].name
    assert {h["username"] for h in history} == {USER[0]}


def test_sqlite_file_holds_the_users_and_history(server, user_client):
    db = sqlite3.connect(server[1] / "cifake.sqlite3")
    assert db.execute("select count(*) from users where role='admin'").fetchone()[0] == 1
    assert db.execute("select count(*) from predictions").fetchone()[0] >= 1
    hashes = [row[0] for row in db.execute("select password_hash from users")]
    assert all(h.startswith("scrypt$") and ADMIN[1] not in h for h in hashes)


def test_first_start_without_a_password_generates_one_and_prints_it_once(two_starts):
    folder, first_log, second_log, *_ = two_starts
    assert "created admin 'admin' with password:" in first_log
    password = first_log.split("with password: ")[1].split()[0]
    assert len(password) >= 16
    from webapp.store import Store

    assert Store(folder=folder).authenticate("admin", password)
    assert "with password" not in second_log  # second start: no new password


def test_the_log_stays_quiet_through_the_warm_up_a_heatmap_and_refusals(server, visitor_client, sample_paths):
    """This server runs with the default warm-up, which loads TensorFlow in the background at start (its C++
    notices are dropped); a refusal is the user's answer, not a traceback in the log."""
    from gradio_client import handle_file

    with pytest.raises(Exception, match="Please sign in"):
        visitor_client.predict(api_name="/history")
    *_, heatmap, _ = visitor_client.predict(handle_file(str(sample_paths["FAKE"][0])), "Grad-CAM",
                                            api_name="/predict_heatmap")  # TensorFlow is loaded by now
    assert heatmap
    log = (server[1] / "server.log").read_text()
    assert log.startswith("* Serving on http://127.0.0.1:"), log
    assert "Warning" not in log and "warn(" not in log and " INFO " not in log, log
    assert "Traceback" not in log, log
    assert not re.search(r"^I\d{4} |oneDNN custom operations|To enable the following instructions", log, re.M), log


# -- every named endpoint, allowed and refused ----------------------------------------------------------
@pytest.fixture(scope="module")
def labelled_zip(tmp_path_factory, sample_paths):
    archive = tmp_path_factory.mktemp("labelled") / "labelled.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for label in ("REAL", "FAKE"):
            for path in sample_paths[label]:
                z.write(path, f"{label}/{path.name}")
    return archive


@pytest.fixture(scope="module")
def flag_id(user_client, admin_client, sample_paths):
    """A pending flag: alice says one of her FAKE verdicts is a real photo."""
    from gradio_client import handle_file

    user_client.predict(handle_file(str(sample_paths["FAKE"][2])), api_name="/predict")
    record = user_client.predict(api_name="/history")[0]["id"]
    user_client.predict(record, "REAL", api_name="/flag")
    table, _ = admin_client.predict(api_name="/admin_feedback")
    return max(row[0] for row in table["data"])


def _cases(sample_paths, labelled_zip, tiny_cifake_zip, user_client, flag_id):
    """(endpoint, role that may call it, arguments, check of the allowed outcome)."""
    from gradio_client import handle_file

    def picture(i=0):
        return handle_file(str(sample_paths["FAKE"][i]))

    record = user_client.predict(api_name="/history")[0]["id"]
    return [
        ("/predict", "visitor", lambda: (picture(),), lambda r: r[0] in LABELS),
        ("/predict_heatmap", "visitor", lambda: (picture(1), "Grad-CAM"), lambda r: r[0] in LABELS and r[4]),
        ("/batch", "user", lambda: ([picture(0), picture(1)],), lambda r: "2 files" in r[1]),
        ("/history", "user", lambda: (), lambda r: isinstance(r, list) and r),
        ("/flag", "user", lambda: (record, "FAKE"), lambda r: r.startswith("Thanks")),
        ("/admin_model", "admin", lambda: (), lambda r: "Model v" in r[0] and "40 pictures (20 REAL, 20 FAKE)" in r[3]),
        ("/admin_run_evaluation", "admin", lambda: (), lambda r: r[0]["data"][-1][:2] == ["Test split, now (v1)", 40]),
        ("/admin_evaluate", "admin", lambda: ("Uploaded labelled zip", handle_file(str(tiny_cifake_zip))),
         lambda r: r[0]["data"][0][1] > 0),
        ("/admin_users", "admin", lambda: (), lambda r: ADMIN[0] in [row[0] for row in r["data"]]),
        ("/admin_create_user", "admin", lambda: ("matrix-bob", "bob-password-123", "user"),
         lambda r: "Created" in r[0]),
        ("/admin_disable_user", "admin", lambda: ("matrix-bob",), lambda r: "disabled" in r[0]),
        ("/admin_enable_user", "admin", lambda: ("matrix-bob",), lambda r: "enabled" in r[0]),
        ("/admin_reset_password", "admin", lambda: ("matrix-bob", "bob-password-456"), lambda r: "reset" in r[0]),
        ("/admin_delete_user", "admin", lambda: ("matrix-bob",), lambda r: "deleted" in r[0]),
        ("/admin_feedback", "admin", lambda: (), lambda r: flag_id in [row[0] for row in r[0]["data"]]),
        ("/admin_accept", "admin", lambda: (flag_id,), lambda r: ["accepted"] == [row[4] for row in r[0]["data"]
                                                                                 if row[0] == flag_id]),
        ("/admin_reject", "admin", lambda: (flag_id,), lambda r: ["rejected"] == [row[4] for row in r[0]["data"]
                                                                                 if row[0] == flag_id]),
        ("/admin_add_labelled", "admin", lambda: (handle_file(str(labelled_zip)),), lambda r: "Added 8" in r[0]),
        ("/admin_retrain_status", "admin", lambda: (), lambda r: "Retraining" in r[0]),
        ("/admin_retrain_preview", "admin", lambda: (5,), lambda r: re.search(
            r"on \*\*\d+ accepted pictures\*\* \(\d+ REAL, \d+ FAKE\) for 5 steps\?", r)),
        ("/admin_retrain", "admin", lambda: (5,), lambda r: "running" in r),
        ("/admin_cancel", "admin", lambda: (), lambda r: r in ("Cancelled.", "No retraining run is in progress.")),
        ("/admin_activate", "admin", lambda: (1,), lambda r: "now serving" in r[0]),
        ("/admin_messages", "admin", lambda: (), lambda r: "headers" in r),
    ]


def test_every_named_endpoint_allows_its_role_and_refuses_the_one_below(
        server, sample_paths, labelled_zip, tiny_cifake_zip, user_client, admin_client, visitor_client, flag_id):
    cases = _cases(sample_paths, labelled_zip, tiny_cifake_zip, user_client, flag_id)
    named = set(admin_client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert named == {c[0] for c in cases}, "a named endpoint without an allowed/refused check"
    callers = {"visitor": (visitor_client, None, ""), "user": (user_client, visitor_client, "Please sign in"),
               "admin": (admin_client, user_client, "Only administrators")}
    for endpoint, role, arguments, check in cases:
        allowed, refused, message = callers[role]
        if refused is not None:
            with pytest.raises(Exception, match=message):
                refused.predict(*arguments(), api_name=endpoint)
        result = allowed.predict(*arguments(), api_name=endpoint)
        assert check(result), f"{endpoint}: {result!r}"


def test_admin_actions_match_names_in_any_case_and_a_refusal_keeps_the_table(admin_client):
    admin_client.predict("Case-Tom", "tom-password-123", "user", api_name="/admin_create_user")
    message, table = admin_client.predict("case-TOM", api_name="/admin_disable_user")
    assert message == "Case-Tom disabled."
    row = next(r for r in table["data"] if r[0] == "Case-Tom")
    assert row[2] == "disabled" and len(row) == 9  # the whole profile: mobile, age, address, picture too
    message, table = admin_client.predict("nobody-at-all", api_name="/admin_enable_user")
    assert message.startswith("⚠") and "no user" in message
    message, _ = admin_client.predict("case-tom", "short", api_name="/admin_reset_password")
    assert message.startswith("⚠") and "at least" in message
    assert admin_client.predict("CASE-tom", api_name="/admin_delete_user")[0] == "Case-Tom deleted."


def test_without_smtp_there_is_no_forgot_password_link(server):
    page = httpx.get(server[0] + "login").text
    assert "Forgot password?" not in page and "Ask an administrator" in page
    assert httpx.get(server[0] + "forgot").status_code in (404, 405)
