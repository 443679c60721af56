"""Set-Cookie values and the one rule for "is this request HTTPS" (behind a trusted proxy too), shared by
the middleware in `webapp.server` and the routes in `webapp.routes`."""
from __future__ import annotations


def is_https(scope, trust_proxy: bool) -> bool:
    if scope.get("scheme") == "https":
        return True
    forwarded = dict(scope.get("headers") or []).get(b"x-forwarded-proto", b"")
    return trust_proxy and forwarded.split(b",")[0].strip() == b"https"


def cookie(name: str, value: str, https: bool, max_age: int | None, same_site: str = "lax") -> str:
    """HttpOnly, whole-site; Secure over HTTPS; `max_age` None: ends with the browser session."""
    parts = [f"{name}={value}", "Path=/", "HttpOnly", f"SameSite={same_site.capitalize()}"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if https:
        parts.append("Secure")
    return "; ".join(parts)
