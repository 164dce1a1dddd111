"""Writes under contention and the cost of deleting a big space.

- contention: POST /api/users with every shipped plugin, so that each new
  user joins the same few open spaces (autoinvite) and every write touches
  the same rows: on PostgreSQL with one and with three app instances on one
  database (one wrk per instance, at once), and on SQLite. Reports writes/s,
  p99, how often operations were run again after a serialization failure
  (from each instance's /api/admin/plugins), the 503s, and checks with the
  apps stopped that every acknowledged write is in the database.
- deletion: DELETE /api/spaces/{id} of a space with 100, 1000 and 5000
  members (SQLite, shipped plugins), timed from the client.

- authorize: writes with 0, 1 and 10 plugins implementing `authorize`.

`python3 bench/races.py [--quick] [--debug]` prints JSON and writes it to
bench/results/races.json (bench/results/quick/ for --quick or --debug;
--debug runs the debug build, to check the script).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import load

OPEN_SPACES = 3
# The in-transaction plugins are what collide; webhooks (after commit) is
# measured by bench/deliveries.py.
IN_TRANSACTION = [p for p in load.SHIPPED if p != "webhooks"]


def no_webhooks(work: Path, writers: int | None = None) -> dict[str, str]:
    """The app's config: webhooks disabled, and with `writers`, that many
    writing connections per instance (`[database] writers`)."""
    config = work / "no-webhooks.toml"
    text = '[plugins]\ndisabled = ["webhooks"]\n'
    if writers is not None:
        text += f"[database]\nwriters = {writers}\n"
    config.write_text(text)
    return {"APP_CONFIG": str(config)}


def contention_run(kind: str, instances: int, pg: str | None, duration: int,
                   connections: int, writers: int | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-races-") as tmp:
        work = Path(tmp)
        db = load.Database(kind, work, pg)
        apps = []
        try:
            plugins = load.shipped_plugins(load.APP, work)
            apps = [load.App(load.APP, work, database=db, plugins_dir=plugins,
                             env=no_webhooks(work, writers))
                    for _ in range(instances)]
            apps[0].check_loaded(IN_TRANSACTION)
            for i in range(OPEN_SPACES):
                status, _ = apps[0].request("POST", "/api/spaces",
                                            {"name": f"lobby {i}", "access": "open"})
                assert status == 201
            runs: list[dict] = [{} for _ in apps]

            def one(i: int) -> None:
                runs[i] = load.wrk(apps[i], "/api/users", duration=duration,
                                   connections=connections, script="writes.lua",
                                   args=("users", load.TOKEN, f"{kind}{instances}i{i}"))

            threads = [threading.Thread(target=one, args=(i,)) for i in range(len(apps))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            retried = gave_up = 0
            for app in apps:
                _, report = app.request("GET", "/api/admin/plugins")
                retried += report["operations"]["retried"]
                gave_up += report["operations"]["gave_up"]
        finally:
            for app in apps:
                app.stop()
        users = db.scalar("SELECT count(*) FROM users")
        members = db.scalar("SELECT count(*) FROM memberships")
        db.drop()
    created = sum(r["created"] for r in runs)
    requests = sum(r["requests"] for r in runs)
    seconds = max(r["duration_us"] for r in runs) / 1e6
    return {
        "database": kind, "instances": instances, "connections_each": connections,
        "writers_each": writers,
        "writes_per_s": created / seconds,
        "p99_ms": max(r["p99_us"] for r in runs) / 1e3,
        "p50_ms": max(r["p50_us"] for r in runs) / 1e3,
        "requests": requests, "created": created,
        "non_2xx": sum(r["status_errors"] for r in runs),
        "retried": retried, "gave_up": gave_up,
        "retries_per_write": retried / max(created, 1),
        "rows": users, "lost": max(0, created - users),
        "memberships_complete": members == users * OPEN_SPACES,
    }


def measure_contention(quick: bool) -> dict:
    duration = 3 if quick else 10
    pg = load.postgres_url()
    runs = [contention_run("sqlite", 1, None, duration, 8)]
    if pg is None:
        load.log("contention on PostgreSQL skipped: no server")
    else:
        # Three instances with the default pool, then with `[database]
        # writers = 3` each: about as many writers at once as one instance
        # with its 8 clients.
        for instances, writers in ((1, None), (3, None), (3, 3)):
            load.log(f"contention: PostgreSQL, {instances} instance(s), writers {writers}")
            runs.append(contention_run("postgres", instances, pg, duration, 8, writers))
    return {"duration_s": duration, "open_spaces": OPEN_SPACES, "runs": runs}


def measure_deletion(quick: bool) -> dict:
    sizes = [100, 1000] if quick else [100, 1000, 5000]
    rows = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-delete-") as tmp:
            work = Path(tmp)
            db = load.Database("sqlite", work)
            app = load.App(load.APP, work, database=db,
                           plugins_dir=load.shipped_plugins(load.APP, work), env=no_webhooks(work))
            try:
                _, space = app.request("POST", "/api/spaces",
                                       {"name": "big", "access": "confidential"})
                # Members written straight into the database: the setup is
                # not what is measured.
                app.stop()
                with __import__("sqlite3").connect(db.path) as conn:
                    conn.executemany(
                        "INSERT INTO users (username, email, created_at) VALUES (?, ?, 'now')",
                        [(f"m{i}", f"m{i}@bench.test") for i in range(size)])
                    conn.execute(
                        "INSERT INTO memberships (space_id, user_id, role, created_at) "
                        "SELECT ?, id, 'reader', 'now' FROM users", (space["id"],))
                app = load.App(load.APP, work, database=db,
                               plugins_dir=load.shipped_plugins(load.APP, work),
                               env=no_webhooks(work))
                started = time.perf_counter()
                status, _ = app.request("DELETE", f"/api/spaces/{space['id']}")
                elapsed = time.perf_counter() - started
                assert status == 204, status
                left = db.scalar("SELECT count(*) FROM memberships")
                audited = db.scalar("SELECT count(*) FROM plugin_audit_log_entries "
                                    "WHERE kind = 'membership_deleted'")
            finally:
                app.stop()
        assert left == 0 and audited == size, (left, audited)
        rows.append({"members": size, "seconds": elapsed, "hooks_fired": audited})
        load.log(f"deletion: {size} members in {elapsed:.3f} s")
    return {"database": "sqlite", "plugins": "shipped", "rows": rows}


AUTHORIZERS = [0, 1, 10]


def measure_authorize(quick: bool) -> dict:
    """POST /api/users through bench-app with N plugins implementing
    `authorize` (no opinion, so the default policy still answers), one
    connection, SQLite on tmpfs: the authorization hook's cost per write."""
    duration, rounds = (1, 1) if quick else (5, 3)
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    runs: dict[int, list[dict]] = {n: [] for n in AUTHORIZERS}
    for round_ in range(rounds):
        for n in AUTHORIZERS:
            load.log(f"authorize, round {round_ + 1}/{rounds}: {n} authorizers")
            with tempfile.TemporaryDirectory(prefix="bench-authz-", dir=shm) as tmp, \
                    tempfile.TemporaryDirectory(prefix="bench-noplugins-") as empty:
                work = Path(tmp)
                db = load.Database("sqlite", work)
                app = load.App(load.BENCH_APP, work, database=db, plugins_dir=Path(empty),
                               env={"BENCH_AUTHORIZERS": str(n), "RUST_LOG": "warn"})
                try:
                    r = load.wrk(app, "/api/users", duration=duration, connections=1,
                                 script="writes.lua", args=("users", load.TOKEN, f"a{round_}n{n}"))
                finally:
                    app.stop()
                runs[n].append(r)
    return {"duration_s": duration, "rounds": rounds,
            "points": [{"authorizers": n, "rps": load.median_of(r, "rps"),
                        "mean_us": load.median_of(r, "mean_us"),
                        "p99_us": load.median_of(r, "p99_us")} for n, r in runs.items()]}


PARTS = {"contention": measure_contention, "deletion": measure_deletion,
         "authorize": measure_authorize}


def measure(quick: bool, only: str | None = None) -> dict:
    load.ensure_wrk()
    return {name: part(quick) for name, part in PARTS.items() if only in (None, name)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, to check the script")
    parser.add_argument("--debug", action="store_true",
                        help="run the debug build (numbers meaningless; checks the script)")
    parser.add_argument("--only", choices=list(PARTS), help="one part alone")
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    load.select_build(args.debug)
    if not args.no_build:
        load.build()
    text = json.dumps(measure(args.quick, args.only), indent=2)
    name = f"races-{args.only}.json" if args.only else "races.json"
    (load.results_dir(args.quick) / name).write_text(text + "\n")
    print(text)
