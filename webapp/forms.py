"""What the account forms share (Register, Profile): each field with its error line under it, the checks
of the profile fields, and which field a store refusal concerns; and the sign-in form, which the Sign in
tab and the `/login` page (webapp.routes.account) both show. Every problem is shown at once, beside
its field, never as a toast."""
from __future__ import annotations

import html
import re

import gradio as gr

MOBILE_RE = re.compile(r"^\+?[0-9][0-9 ()-]{5,19}$")
# the store's refusals, by the field they concern (its messages name it)
STORE_FIELDS = (("e-mail", "email"), ("user name", "username"), ("password", "password"), ("age", "age"))


def field_with_error(component: gr.components.Component) -> tuple[gr.components.Component, gr.Markdown]:
    """Render `component` (made with render=False and an elem_id) with its error line right under it."""
    with gr.Column(min_width=220):
        component.render()
        error = gr.Markdown(elem_classes="field-error", elem_id=f"{component.elem_id}-error")
    return component, error


def error_lines(fields: tuple[str, ...], problems: dict[str, str]) -> tuple[str, ...]:
    """One error line per field, in order: "⚠ problem" or empty."""
    return tuple(f"⚠ {problems[f]}" if f in problems else "" for f in fields)


def parse_age(age) -> int | None:
    """The form's age (text or number) -> int, None when left empty, -1 when it is no age."""
    if age is None or (isinstance(age, str) and not age.strip()):
        return None
    try:
        value = float(str(age).strip())
    except ValueError:
        return -1
    return int(value) if value.is_integer() and 0 < value < 150 else -1


def contact_problems(mobile, age) -> dict[str, str]:
    """The optional profile fields' problems, by field."""
    problems = {}
    if mobile and not MOBILE_RE.match(mobile.strip()):
        problems["mobile"] = f"{mobile!r} does not look like a mobile number (digits, spaces, + - ( ); 6-20 characters)."
    if parse_age(age) == -1:
        problems["age"] = f"Age must be a whole number between 1 and 149; got {age!r}."
    return problems


def field_of(store_message: str) -> str:
    """The form field a store refusal concerns ("" if none)."""
    lowered = store_message.lower()
    return next((field for words, field in STORE_FIELDS if words in lowered), "")


SIGNIN_NAME_COOKIE = "cifake_signin_name"  # what a refused sign-in typed, for 2 minutes (webapp.routes.account)
REFUSALS = {"wrong": "Wrong user name, e-mail or password.",
            "limited": "Too many failed attempts from here; wait a minute and try again."}


def signin_form_html(smtp_enabled: bool, error: str = "", name: str = "", in_app: bool = True) -> str:
    forgot = '<p><a href="/forgot">Forgot password?</a></p>' if smtp_enabled else \
        "<p>Forgot your password? Ask an administrator to reset it.</p>"
    message = f'<p class="cifake-error" role="alert" id="signin-error">{html.escape(error)}</p>' if error else ""
    register = ("<p>No account yet? Open the <b>Register</b> tab.</p>" if in_app else
                '<p>No account yet? <a href="/">Register in the app</a>.</p>')
    return f"""
<form method="post" action="/login" class="cifake-form" id="signin-form">
  <h2>Sign in</h2>{message}
  <label>User name or e-mail<input name="username" autocomplete="username" required
    value="{html.escape(name[:120])}"></label>
  <label>Password<input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Sign in</button>
</form>{forgot}
{register}"""
