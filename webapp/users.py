"""Manage accounts from a shell: `python -m webapp.users list|create|disable|enable|reset|role`.

    python -m webapp.users create alice --role user        # asks for the password
    CIFAKE_PASSWORD=... python -m webapp.users reset alice # or takes it from the environment

Uses the same database as the app (`CIFAKE_DATA_DIR` / `CIFAKE_DATABASE_URL`).
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys

from webapp.store import ROLES, AccountError, Store


def _password() -> str:
    password = os.environ.get("CIFAKE_PASSWORD")
    if password:
        return password
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat: "):
        raise AccountError("The passwords differ.")
    return first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m webapp.users", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="data folder (default CIFAKE_DATA_DIR or ./data)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list users")
    create = sub.add_parser("create", help="create a user")
    create.add_argument("username")
    create.add_argument("--role", choices=ROLES, default="user")
    for name in ("disable", "enable", "reset"):
        sub.add_parser(name, help=f"{name} a user").add_argument("username")
    role = sub.add_parser("role", help="change a user's role")
    role.add_argument("username")
    role.add_argument("role", choices=ROLES)
    args = parser.parse_args(argv)

    store = Store(folder=args.data_dir)
    try:
        if args.command == "list":
            for user in store.list_users():
                print(f"{user['username']:<24} {user['role']:<6} {'disabled' if user['disabled'] else 'active'}")
        elif args.command == "create":
            store.create_user(args.username, _password(), args.role)
            print(f"created {args.username} ({args.role})")
        elif args.command in ("disable", "enable"):
            store.set_disabled(args.username, args.command == "disable")
            print(f"{args.username} {args.command}d")
        elif args.command == "reset":
            store.set_password(args.username, _password())
            print(f"password of {args.username} reset")
        elif args.command == "role":
            store.set_role(args.username, args.role)
            print(f"{args.username} is now {args.role}")
    except AccountError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
