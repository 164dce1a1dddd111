#!/usr/bin/env python3
"""The statements a write sends to PostgreSQL, counted from the server's
own log: `POST /api/users`, one at a time, with no plugin and with every
shipped plugin (webhooks posting to a receiver on 127.0.0.1), on a scratch
database whose `log_statement` is `all`.

    python3 bench/roundtrips.py [--debug] [--log /var/log/postgresql/postgresql-15-main.log]

Each logged line of a write's transaction is one round trip: a text query
(`SELECT 1; COMMIT`, several statements in one) logs once, a prepared
statement logs its `execute`. Counts do not depend on the machine's
load; the lines of one transaction are those of its backend between its
`BEGIN` and its `COMMIT`. Needs a server that logs to a file this user can
read, and the right to change a database's settings (a superuser).

What the log does not show, sqlx's pings of a pooled connection (a lone
`Sync` message and its answer: before each use where the pool tests
connections, and after each use, always), is counted by a TCP proxy the
app reaches the server through: every time a connection's client speaks
after the server did is one round trip, a ping if what it sent is a lone
`Sync`. Those counts are of everything the app sent in the window (the
20 writes, then until the connections are quiet): with every shipped
plugin they include the delivery worker's.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("load", HERE / "load.py")
load = importlib.util.module_from_spec(spec)
sys.modules["load"] = load
spec.loader.exec_module(load)

LINE = re.compile(r"\[(\d+)\][^\]]*? LOG:  (?:statement|execute [^:]*): (.*)$")
WRITES = 20


SYNC = b"S\x00\x00\x00\x04"  # PostgreSQL's Sync message: sqlx's ping alone


class Turns:
    """A TCP proxy to the server at `url` that counts round trips: each time
    a connection's client speaks after the server did (or first), one; a
    ping when what it sent is a lone Sync."""

    def __init__(self, url: str):
        where = urllib.parse.urlsplit(url)
        self.target = (where.hostname or "127.0.0.1", where.port or 5432)
        self.listener = socket.create_server(("127.0.0.1", 0))
        port = self.listener.getsockname()[1]
        self.url = where._replace(netloc=f"{where.username or 'postgres'}@127.0.0.1:{port}").geturl()
        self.lock = threading.Lock()
        self.turns = self.pings = 0
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            server = socket.create_connection(self.target)
            spoke = ["server"]  # who spoke last on this connection
            for src, dst, side in ((client, server, "client"), (server, client, "server")):
                threading.Thread(target=self.pump, args=(src, dst, side, spoke), daemon=True).start()

    def pump(self, src: socket.socket, dst: socket.socket, side: str, spoke: list[str]) -> None:
        try:
            while data := src.recv(65536):
                with self.lock:
                    if side == "client" and spoke[0] == "server":
                        self.turns += 1
                        self.pings += data == SYNC
                    spoke[0] = side
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def quiet(self) -> tuple[int, int]:
        """The counts, once nothing was sent for half a second (the pings
        after use run once the answer is out)."""
        last = None
        while True:
            with self.lock:
                now = (self.turns, self.pings)
            if now == last:
                return now
            last = now
            time.sleep(0.5)


def count(plugins: list[str], server: str, log_path: Path) -> tuple[collections.Counter, float, float]:
    """Statements per write, by first word, over WRITES writes; and round
    trips and pings per write, counted by the proxy."""
    with tempfile.TemporaryDirectory(prefix="bench-roundtrips-") as tmp:
        work = Path(tmp)
        folder = work / "plugins"
        folder.mkdir()
        for name in plugins:
            shutil.copy(load.BUILD / f"libapp_plugin_{name}.so", folder)
        db = load.Database("postgres", work, server)
        proxy = Turns(db.url)
        db.url = proxy.url
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
            turns, pings = proxy.quiet()
            for i in range(WRITES):
                status, _ = app.request("POST", "/api/users", {"username": f"u{i}",
                                                               "email": f"u{i}@example.org"})
                assert status == 201, status
            turns_after, pings_after = proxy.quiet()
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
    per_write = collections.Counter({k: v / WRITES for k, v in per_word.items()})
    return per_write, (turns_after - turns) / WRITES, (pings_after - pings) / WRITES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="the debug build")
    parser.add_argument("--log", default="/var/log/postgresql/postgresql-15-main.log")
    args = parser.parse_args()
    load.select_build(args.debug)
    server = load.postgres_url() or sys.exit("no PostgreSQL server")
    for name, plugins in (("none", []), ("every shipped plugin", load.SHIPPED)):
        counts, turns, pings = count(plugins, server, Path(args.log))
        print(f"{name}: {sum(counts.values()):g} logged round trips per write; "
              f"through the proxy {turns:g} round trips per write, {pings:g} of them pings")
        for text, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            print(f"  {n:g}  {text}")


if __name__ == "__main__":
    main()
