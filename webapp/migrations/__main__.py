"""`python -m webapp.migrations [upgrade|current|head]` on the app's database (CIFAKE_DATABASE_URL, else the
SQLite file in CIFAKE_DATA_DIR). The app upgrades on start by itself; this is for operators."""
from __future__ import annotations

import argparse
import os
import sys

import sqlalchemy as sa

from webapp import migrations
from webapp.store import data_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m webapp.migrations", description=__doc__)
    parser.add_argument("action", choices=("upgrade", "current", "head"), nargs="?", default="current")
    args = parser.parse_args(argv)
    url = os.environ.get("CIFAKE_DATABASE_URL")
    if not url:
        data_dir().mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{data_dir() / 'cifake.sqlite3'}"
    if args.action == "head":
        print(migrations.head_revision())
        return 0
    engine = sa.create_engine(url)
    if args.action == "upgrade":
        print(f"upgraded to {migrations.upgrade(engine)}")
    else:
        print(migrations.current_revision(engine) or "none (an empty database, or one made before migrations)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
