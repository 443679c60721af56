"""Password hashing (scrypt, random salt, constant-time comparison), the password rule, token hashes."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


MIN_PASSWORD = 10
SCRYPT = {"n": 2**14, "r": 8, "p": 1}

def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                                dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


_DUMMY_HASH = hash_password(secrets.token_urlsafe(12))  # equal work for unknown users

# Passwords people pick first (and that every guessing list starts with); refused whatever their length.
COMMON_PASSWORDS = frozenset("""
password password1 password12 password123 password1234 passw0rd passw0rd1 p@ssw0rd p@ssword
1234567890 12345678910 0123456789 1234512345 1111111111 1q2w3e4r5t 1qaz2wsx3edc qwertyuiop
qwerty1234 qwerty12345 qwerty123456 asdfghjkl asdfghjkl1 zxcvbnm123 iloveyou12 iloveyou123 letmein123
welcome123 welcome1234 football12 baseball12 sunshine12 princess12 dragon1234 monkey1234 trustno1234
administrator admin12345 admin123456 adminadmin changeme123 superman12 starwars12 whatever12
abcdefghij abcd123456 abc1234567 aaaaaaaaaa qazwsxedcrfv 123qweasdzxc passwordpassword
""".split())


PASSWORD_RULE = (f"At least {MIN_PASSWORD} characters with at least 4 different ones; not your user name and not "
                 "a common password.")


def password_problem(password: str, username: str = "") -> str | None:
    """Why `password` is too weak for `username` (a sentence to show), or None when it is fine."""
    if len(password) < MIN_PASSWORD:
        return f"Passwords need at least {MIN_PASSWORD} characters."
    if len(password) > 200:
        return "Passwords may have at most 200 characters."
    lowered = password.lower()
    stripped = lowered.strip("0123456789!@#$%^&*()-_=+.,;:?")
    name = username.strip().lower()
    if name and (lowered == name or stripped == name or lowered == name[::-1]):
        return "The password must not be the user name."
    if lowered in COMMON_PASSWORDS or stripped in COMMON_PASSWORDS:
        return "That password is on every list of common passwords; pick another."
    if len(set(lowered)) < 4:
        return "That password repeats too few characters; use at least 4 different ones."
    return None


def token_hash(token: str) -> str:
    """Tokens are random 256-bit strings: a plain SHA-256 is enough to keep them out of the database."""
    return hashlib.sha256(token.encode()).hexdigest()
