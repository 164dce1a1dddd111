#!/usr/bin/env python3
"""The statements a write sends to PostgreSQL, counted from the server's
own log: `POST /api/users`, one at a time, with no plugin and with every
shipped plugin (webhooks posting to a receiver on 127.0.0.1), on a scratch
database whose `log_statement` is `all`.

    python3 bench/roundtrips.py [--debug] [--log /var/log/postgresql/postgresql-15-main.log]

Each logged line of a write's transaction is one round trip: a text query
(`SELECT 1; COMMIT`, several statements in one) logs once, a prepared
statement logs its `execute`. Not logged, and added by hand in
BENCHMARKS.md: sqlx's ping of a pooled connection before each use (a
`Sync` message and its answer). Counts do not depend on the machine's
load; the lines of one transaction are those of its backend between its
`BEGIN` and its `COMMIT`. Needs a server that logs to a file this user can
read, and the right to change a database's settings (a superuser).
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import re
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("load", HERE / "load.py")
load = importlib.util.module_from_spec(spec)
sys.modules["load"] = load
spec.loader.exec_module(load)

LINE = re.compile(r"\[(\d+)\][^\]]*? LOG:  (?:statement|execute [^:]*): (.*)$")
WRITES = 20


def count(plugins: list[str], server: str, log_path: Path) -> collections.Counter:
    """Statements per write, by first word, over WRITES writes."""
    with tempfile.TemporaryDirectory(prefix="bench-roundtrips-") as tmp:
        work = Path(tmp)
        folder = work / "plugins"
        folder.mkdir()
        for name in plugins:
            shutil.copy(load.BUILD / f"libapp_plugin_{name}.so", folder)
        db = load.Database("postgres", work, server)
        receiver = load.Receiver()
        config = load.webhooks_config(work, receiver if "webhooks" in plugins else None)
        db.psql(f"ALTER DATABASE {db.name} SET log_statement = 'all'")
        app = None
        try:
            app = load.App(load.APP, work, database=db, plugins_dir=folder,
                           env={"APP_CONFIG": str(config), "RUST_LOG": "warn"})
            app.check_loaded(plugins)
            for i in range(3):  # warm: statements prepared, connections open
                app.request("POST", "/api/users", {"username": f"warm{i}",
                                                    "email": f"warm{i}@example.org"})
            start = log_path.stat().st_size
            for i in range(WRITES):
                status, _ = app.request("POST", "/api/users", {"username": f"u{i}",
                                                               "email": f"u{i}@example.org"})
                assert status == 201, status
            with open(log_path, "rb") as log:
                log.seek(start)
                lines = log.read().decode(errors="replace").splitlines()
        finally:
            if app:
                app.stop()
            receiver.stop()
            db.drop()
    open_tx: dict[str, list[str]] = {}
    per_word: collections.Counter = collections.Counter()
    writes = 0
    for line in lines:
        m = LINE.search(line)
        if not m:
            continue
        pid, text = m.groups()
        if text.startswith("BEGIN"):
            open_tx[pid] = [text]
            continue
        if pid not in open_tx:
            continue
        open_tx[pid].append(text)
        if "COMMIT" in text or "ROLLBACK" in text:
            tx = open_tx.pop(pid)
            if any(t.startswith("INSERT INTO users") for t in tx):
                writes += 1
                for t in tx:
                    per_word[" ".join(t.split()[:3])] += 1
    assert writes == WRITES, f"found {writes} write transactions in the log, not {WRITES}"
    return collections.Counter({k: v / WRITES for k, v in per_word.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="the debug build")
    parser.add_argument("--log", default="/var/log/postgresql/postgresql-15-main.log")
    args = parser.parse_args()
    load.select_build(args.debug)
    server = load.postgres_url() or sys.exit("no PostgreSQL server")
    for name, plugins in (("none", []), ("every shipped plugin", load.SHIPPED)):
        counts = count(plugins, server, Path(args.log))
        print(f"{name}: {sum(counts.values()):g} logged round trips per write")
        for text, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            print(f"  {n:g}  {text}")


if __name__ == "__main__":
    main()
