"""E-mail through the SMTP server named by one URL: `smtp://user:pass@host:port?from=a@b&starttls=1`
(`smtps://` for TLS from the start). Used for password-reset links only."""
from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit


def send_mail(smtp_url: str, to: str, subject: str, body: str) -> None:
    """Send one plain-text message; raises OSError/smtplib.SMTPException when the server refuses."""
    url = urlsplit(smtp_url)
    if url.scheme not in ("smtp", "smtps"):
        raise ValueError(f"CIFAKE_SMTP_URL must start with smtp:// or smtps://; got {url.scheme!r}.")
    options = {k: v[0] for k, v in parse_qs(url.query).items()}
    message = EmailMessage()
    message["From"] = options.get("from", f"cifake@{url.hostname or 'localhost'}")
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    port = url.port or (465 if url.scheme == "smtps" else 25)
    smtp_class = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
    with smtp_class(url.hostname or "localhost", port, timeout=20) as smtp:
        if url.scheme == "smtp" and options.get("starttls") in ("1", "true", "yes"):
            smtp.starttls(context=ssl.create_default_context())
        if url.username:
            smtp.login(unquote(url.username), unquote(url.password or ""))
        smtp.send_message(message)
