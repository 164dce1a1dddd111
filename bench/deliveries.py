#!/usr/bin/env python3
"""After-commit deliveries under load, with the real app (release build):

    python3 bench/deliveries.py            # 8 s per phase
    python3 bench/deliveries.py --quick    # 2 s per phase
    python3 bench/deliveries.py --quick --debug   # the debug build: checks the script

For SQLite (one instance) and PostgreSQL (one and three instances on one
database), with no plugin and with only the webhooks plugin (or, with
`--plugins shipped`, every shipped plugin; `--plugins in-transaction`,
every shipped plugin but webhooks, nothing to deliver) posting to a receiver on
127.0.0.1 that answers 200; the `[deliveries]` defaults (poll_ms among
them) but for the lease:

1. writes: POST /api/users with wrk (one wrk per instance, in parallel):
   writes/s and p99; every acknowledged write must be delivered exactly
   once, checked in the database and at the receiver; how many events
   were not delivered yet when the writes stopped, and how long after
   the last one arrived (a worker slower than the writers: a backlog);
2. commit-to-receiver latency: arrival at the receiver minus the user's
   `created_at` (stamped inside the transaction, just before the commit),
   p50 and p99: under phase 1's saturating load (queueing included), and
   for 300 writes sent one at a time (the path itself);
3. deliveries/s: the receiver holds the first requests of a second wrk
   phase, so every later event waits behind them; once
   released, the backlog drains: events / drain time.

Writes bench/results/deliveries.json (bench/results/quick/ for --quick or
--debug), where a run replaces only the earlier runs of the same database,
instances and plugins (`--only` and `--plugins` runs add up), and prints
two Markdown tables: the runs, and each party's CPU per write.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("load", HERE / "load.py")
load = importlib.util.module_from_spec(spec)
sys.modules["load"] = load
spec.loader.exec_module(load)


def created_at(text: str) -> float:
    """RFC 3339 with up to nanoseconds, as Unix seconds."""
    head, _, frac = text.rstrip("Z").partition(".")
    at = datetime.fromisoformat(head).replace(tzinfo=timezone.utc).timestamp()
    return at + (float("0." + frac) if frac else 0.0)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def wait(what: str, done, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what}")
        time.sleep(0.02)


def parallel_wrk(apps, duration: float, connections: int, tag: str) -> list[dict]:
    """One wrk per instance at once, `connections` split between them."""
    each = max(2, connections // len(apps))
    out: list[dict | None] = [None] * len(apps)

    def one(i: int) -> None:
        out[i] = load.wrk(apps[i], "/api/users", duration=duration, connections=each,
                          script="writes.lua", args=("users", load.TOKEN, f"{tag}i{i}"))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(apps))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [r for r in out if r is not None]


def latencies(arrivals) -> list[float]:
    """Milliseconds from `created_at` to the first arrival, per event."""
    first = {}
    for key, at, created_text in arrivals:
        first.setdefault(key, at - created_at(created_text))
    return [v * 1e3 for v in first.values()]


def run(kind: str, instances: int, plugins: str, against: str, pg: str | None,
        duration: float, connections: int, extra: str = "") -> dict:
    """One phase of writes with `plugins` loaded (`none`, or `against`, the
    plugins compared with none in this pair), then, where something
    delivers, the deliveries' own phases."""
    # A claim is leased long enough for the held phase's first request to
    # wait out a whole phase. When a worker's settling write fails (on
    # PostgreSQL: a serialization failure against the writers), its claims
    # are tried again only once their lease ends, so every wait below allows
    # a whole lease on top of the work itself.
    lease_ms = int(duration * 15_000)  # 120 s for the 8 s phases, 30 s for --quick
    patience = lease_ms / 1000 + 60
    with tempfile.TemporaryDirectory(prefix="bench-deliveries-") as tmp:
        work = Path(tmp)
        folder = work / "plugins"
        folder.mkdir()
        loaded = {"none": [], "webhooks": ["webhooks"], "shipped": load.SHIPPED,
                  "in-transaction": [p for p in load.SHIPPED if p != "webhooks"]}[plugins]
        for name in loaded:
            shutil.copy(load.BUILD / f"libapp_plugin_{name}.so", folder)
        delivering = "webhooks" in loaded
        db = load.Database(kind, work, pg)
        receiver = load.Receiver()
        config = load.webhooks_config(work, receiver if delivering else None,
                                      extra, lease_ms)
        apps = []
        try:
            for i in range(instances):
                data = work / f"instance{i}"
                data.mkdir()
                apps.append(load.App(load.APP, data if kind == "postgres" else work,
                                     database=db, plugins_dir=folder,
                                     env={"APP_CONFIG": str(config)}))
            for app in apps:
                app.check_loaded(loaded)
            tag = f"{kind}{instances}{plugins}"
            shares = load.CpuShares(apps, postgres=kind == "postgres")
            writes = parallel_wrk(apps, duration, connections, tag + "a")
            cores = shares.stop()
            ended = time.time()
            # How far behind the writers the deliveries were when they
            # stopped: a count, whatever the machine's speed.
            behind = db.scalar("SELECT count(*) FROM users") - receiver.count()
            created = sum(w["created"] for w in writes)
            result = {
                "database": kind, "instances": instances, "plugins": plugins, "against": against,
                "writes_per_s": sum(w["rps"] for w in writes),
                "p50_ms": max(w["p50_us"] for w in writes) / 1e3,
                "p99_ms": max(w["p99_us"] for w in writes) / 1e3,
                "created": created,
                "server_cpu_us_per_write": sum(w["server_cpu_us_per_request"] * w["requests"]
                                               for w in writes) / max(1, sum(w["requests"] for w in writes)),
                # Cores each party used while the writes ran: what the
                # machine's cores were spent on, and what was left.
                "cores": cores,
                "errors": sum(w["status_errors"] + w["socket_errors"] + w["timeouts"]
                              for w in writes),
            }
            if delivering:
                # Every committed write (acknowledged or cut off by wrk's end).
                committed = db.scalar("SELECT count(*) FROM users")
                wait("phase 1 deliveries", lambda: db.scalar(
                    "SELECT count(*) FROM outbox_deliveries WHERE status = 'delivered'") >= committed,
                    patience)
                loaded = latencies(list(receiver.arrivals))
                result["behind_at_end"] = behind
                result["drained_ms"] = (max(a[1] for a in receiver.arrivals) - ended) * 1e3
                # 2. One write at a time: the path without queueing.
                mark = receiver.count()
                for i in range(300):
                    status, _ = apps[i % len(apps)].request(
                        "POST", "/api/users",
                        {"username": f"{tag}one{i}", "email": f"{tag}one{i}@bench.test"})
                    assert status == 201, status
                wait("one-at-a-time deliveries", lambda: receiver.count() >= mark + 300, patience)
                single = latencies(list(receiver.arrivals)[mark:])
                committed = db.scalar("SELECT count(*) FROM users")
                result.update({
                    "latency_p50_ms": percentile(loaded, 50),
                    "latency_p99_ms": percentile(loaded, 99),
                    "single_latency_p50_ms": percentile(single, 50),
                    "single_latency_p99_ms": percentile(single, 99),
                })
                # 3. A backlog behind a held request, then its drain.
                before = receiver.count()
                receiver.hold()
                shares = load.CpuShares(apps, postgres=kind == "postgres")
                backlog = parallel_wrk(apps, duration, connections, tag + "b")
                result["backlog_cores"] = shares.stop()
                queued = db.scalar("SELECT count(*) FROM users") - committed
                start = time.time()
                receiver.release()
                wait("the backlog", lambda: receiver.count() >= before + queued, patience)
                last = max(a[1] for a in receiver.arrivals)
                result.update({
                    "backlog": queued,
                    "deliveries_per_s": (queued - 1) / max(last - start, 1e-6),
                })
                wait("the backlog recorded", lambda: db.scalar(
                    "SELECT count(*) FROM outbox_deliveries WHERE status = 'delivered'")
                    >= committed + queued, patience)
                total = db.scalar("SELECT count(*) FROM outbox_deliveries WHERE status = 'delivered'")
                keys = [a[0] for a in receiver.arrivals]
                # Writes cut off by wrk's end still commit: count them now.
                users = db.scalar("SELECT count(*) FROM users")
                result["all_delivered"] = total == users == len(set(keys))
                result["backlog_writes_per_s"] = sum(w["rps"] for w in backlog)
                result["duplicates"] = len(keys) - len(set(keys))

            return result
        finally:
            for app in apps:
                app.stop()
            receiver.stop()
            db.drop()


def table(runs: list[dict]) -> str:
    lines = [
        "| database | instances | plugins | writes/s | p50 ms | p99 ms | app CPU per write | writes/s, deliveries held | commit→receiver under load p50 / p99 ms | one at a time p50 / p99 ms | deliveries/s (backlog) | behind when the writes stop / drained after ms | all delivered, once |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        if "skipped" in r:
            lines.append(f"| {r['database']} | | | skipped: {r['skipped']} | | | | | | |")
            continue
        hooks = "latency_p50_ms" in r
        lines.append(
            f"| {r['database']} | {r['instances']} | {r['plugins']} | {r['writes_per_s']:,.0f} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['server_cpu_us_per_write']:.0f} us | "
            + (f"{r['backlog_writes_per_s']:,.0f} | {r['latency_p50_ms']:,.1f} / {r['latency_p99_ms']:,.1f} | "
               f"{r['single_latency_p50_ms']:.1f} / {r['single_latency_p99_ms']:.1f} | "
               f"{r['deliveries_per_s']:,.0f} ({r['backlog']}) | "
               f"{r['behind_at_end']} / {max(0, r['drained_ms']):,.0f} | "
               f"{'yes' if r['all_delivered'] and r['duplicates'] == 0 else 'NO'} |"
               if hooks else "| | | | |"))
    return "\n".join(lines)


PARTIES = ("app", "postgres", "wrk", "receiver")


def cpu_table(runs: list[dict]) -> str:
    """CPU per write of each party, in microseconds (cores / writes/s),
    beside the cores other processes took and those left idle: where a
    machine with no idle core spends a write."""
    lines = [
        "| database | instances | plugins | phase | writes/s | "
        + " | ".join(f"{p} us/write" for p in PARTIES) + " | all us/write | other processes, cores | idle cores |",
        "|---|---|---|---|---:|" + "---:|" * (len(PARTIES) + 3),
    ]
    for r in runs:
        phases = [("writes", r.get("cores"), r.get("writes_per_s"))]
        if "backlog_cores" in r:
            phases.append(("deliveries held", r["backlog_cores"], r["backlog_writes_per_s"]))
        for phase, cores, rate in phases:
            if cores is None:
                continue
            per = [cores[p] * 1e6 / rate for p in PARTIES]
            lines.append(
                f"| {r['database']} | {r['instances']} | {r['plugins']} | {phase} | {rate:,.0f} | "
                + " | ".join(f"{v:.0f}" for v in per)
                + f" | {sum(per):.0f} | {cores['other']:.2f} | {cores['idle']:.2f} |")
    return "\n".join(lines)


def run_key(run: dict) -> tuple:
    """What a run measured: a later run of the same replaces it. `against`
    tells the plugin-less run of one pair from another's."""
    return (run["database"], run.get("instances"), run.get("plugins"), run.get("against"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--debug", action="store_true",
                        help="run the debug build (numbers meaningless; checks the script)")
    parser.add_argument("--only", help="sqlite, postgres1 or postgres3")
    parser.add_argument("--deliveries", default="", help="extra [deliveries] lines")
    parser.add_argument("--plugins", default="webhooks",
                        choices=["webhooks", "shipped", "in-transaction"],
                        help="against none: webhooks alone, every shipped plugin, or every "
                             "shipped plugin but webhooks (nothing to deliver)")
    args = parser.parse_args()
    load.select_build(args.debug)
    if not args.no_build:
        load.build()
    load.ensure_wrk()
    duration = 2 if args.quick else 8
    connections = 8
    pg = load.postgres_url()
    plan = [("sqlite", 1)] + ([("postgres", 1), ("postgres", 3)] if pg else [])
    if args.only:
        plan = [p for p in plan if f"{p[0]}{p[1] if p[0] == 'postgres' else ''}" == args.only]
    runs = []
    for kind, instances in plan:
        for plugins in ("none", args.plugins):
            load.log(f"deliveries: {kind} x{instances}, {plugins}")
            runs.append(run(kind, instances, plugins, args.plugins, pg, duration, connections,
                            args.deliveries.replace("\\n", "\n")))
    if not pg:
        runs.append({"database": "postgres", "skipped": "no server"})
    out = load.results_dir(args.quick) / "deliveries.json"
    kept = []
    if out.exists():
        earlier = json.loads(out.read_text())
        if (earlier.get("duration_s"), earlier.get("connections")) == (duration, connections):
            ran = {run_key(r) for r in runs}
            # Runs written before `against` was recorded cannot be paired: dropped.
            kept = [r for r in earlier.get("runs", [])
                    if "against" in r and run_key(r) not in ran]
    out.write_text(json.dumps({"duration_s": duration, "connections": connections,
                               "runs": kept + runs}, indent=2))
    print(table(runs))
    print()
    print(cpu_table(runs))


if __name__ == "__main__":
    main()
