#!/usr/bin/env python3
"""Instructions per write, with no plugin against every shipped plugin,
under callgrind:

    python3 bench/callgrind_writes.py --debug                  # SQLite and PostgreSQL
    python3 bench/callgrind_writes.py --only sqlite --top 40 --writes 300

The writes ratios (BENCHMARKS.md, "PostgreSQL under load") track the
app's CPU per write; unlike writes/s or CPU time, instruction counts do not
move with the machine's load, so this can be run on a busy machine and
compared from one change to the next. Only user space is counted, and only
the app's (the database server and the receiver are other processes).

For each database and each of three plugin sets, the app (`app-main`, so
that valgrind sees the app and not the launcher that execs it) runs under
valgrind on a fresh database: "none" (no plugin), "shipped" (every shipped
plugin, webhooks delivering to a receiver on 127.0.0.1) and "held" (the
same, the receiver holding every request: the events are recorded and
nothing is delivered). One keep-alive connection sends `--warmup` writes
(`POST /api/users`), the counters are zeroed (`callgrind_control -z`), it
sends `--writes` more one after the other, waits until every one of them
is delivered and recorded as such ("shipped"), and the counters are dumped.
Every thread of the process is counted: the requests, the delivery worker,
the access log's thread. Written one at a time, each write's event is a
batch of its own for the worker (a claim and a settle per event, where a
loaded app claims up to `batch` at once): "shipped" is the worker's worst
case. `--top N` prints the N functions with the highest inclusive cost per
write (the app's own code), `--self N` the highest self cost.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import load  # noqa: E402

SETS = ("none", "shipped", "held")


def writes(port: int, tag: str, count: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {load.TOKEN}", "Content-Type": "application/json"}
    for i in range(count):
        name = f"{tag}_{i}"
        conn.request("POST", "/api/users",
                     body=json.dumps({"username": name, "email": f"{name}@bench.test"}),
                     headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 201:
            raise RuntimeError(f"POST /api/users: {response.status}")
    conn.close()


def wait(what: str, done, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what}")
        time.sleep(0.1)


def annotate(dump: Path, inclusive: bool, count: int, per: int) -> str:
    args = ["callgrind_annotate", "--threshold=100"] + (["--inclusive=yes"] if inclusive else [])
    report = subprocess.run(args + [str(dump)], capture_output=True, text=True).stdout
    lines = []
    for line in report.splitlines():
        parts = line.split(None, 1)
        if len(parts) != 2 or "(" not in parts[1]:
            continue
        try:
            total = int(parts[0].replace(",", ""))
        except ValueError:
            continue
        lines.append(f"{total / per:>12,.0f}  {parts[1][:150]}")
        if len(lines) == count:
            break
    return "\n".join(lines)


def run(kind: str, plugins: str, pg: str | None, warmup: int, count: int,
        top: int, self_top: int, keep: Path | None) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-cg-writes-") as tmp:
        work = Path(tmp)
        folder = work / "plugins"
        folder.mkdir()
        loaded = [] if plugins == "none" else load.SHIPPED
        for name in loaded:
            shutil.copy(load.BUILD / f"libapp_plugin_{name}.so", folder)
        db = load.Database(kind, work, pg)
        receiver = load.Receiver() if loaded else None
        config = load.webhooks_config(work, receiver)
        out = work / "callgrind.out"
        wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                   "--dump-instr=no"]
        app = load.App(load.BUILD / "app-main", work, database=db, plugins_dir=folder,
                       env={"APP_CONFIG": str(config)}, wrapper=wrapper, ready_timeout=600)
        try:
            app.check_loaded(loaded)
            if plugins == "held":
                receiver.hold()
            writes(app.port, "warm", warmup)
            if plugins == "shipped":
                wait("the warm-up's deliveries", lambda: receiver.count() >= warmup)
            time.sleep(1)  # the warm-up's settle and log lines
            subprocess.run(["callgrind_control", "-z", str(app.proc.pid)], check=True,
                           capture_output=True)
            writes(app.port, "w", count)
            if plugins == "shipped":
                total = warmup + count
                wait("the deliveries", lambda: receiver.count() >= total)
                wait("the deliveries recorded", lambda: db.scalar(
                    "SELECT count(*) FROM outbox_deliveries WHERE status = 'delivered'") >= total)
            time.sleep(1)  # the access log's thread writes what it was handed
            before = set(work.glob("callgrind.out*"))
            subprocess.run(["callgrind_control", "-d", str(app.proc.pid)], check=True,
                           capture_output=True)
            wait("the dump", lambda: set(work.glob("callgrind.out*")) - before, 60)
            (dump,) = set(work.glob("callgrind.out*")) - before
            time.sleep(0.5)
            per_write = totals(dump) / count
            if keep:
                keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(dump, keep / f"callgrind.{kind}.{plugins}.out")
            if top:
                print(f"--- {kind}, {plugins}: inclusive per write")
                print(annotate(dump, True, top, count))
            if self_top:
                print(f"--- {kind}, {plugins}: self per write")
                print(annotate(dump, False, self_top, count))
            return per_write
        finally:
            if receiver:
                receiver.release()
            app.stop(timeout=120)
            if receiver:
                receiver.stop()
            db.drop()


def totals(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {dump}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="the debug build (default: release)")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--sets", default=",".join(SETS), help="of none, shipped, held")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--top", type=int, default=0)
    parser.add_argument("--self", dest="self_top", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="copy each callgrind dump into this folder")
    args = parser.parse_args()
    load.select_build(args.debug)
    pg = load.postgres_url()
    kinds = [k for k in ("sqlite", "postgres") if args.only in (None, k)]
    sets = args.sets.split(",")
    results = {}
    for kind in kinds:
        if kind == "postgres" and not pg:
            load.log("postgres: no server, skipped")
            continue
        for plugins in sets:
            load.log(f"callgrind writes: {kind}, {plugins}")
            results[(kind, plugins)] = run(kind, plugins, pg, args.warmup, args.writes,
                                           args.top, args.self_top, args.keep)
    print(f"instructions per write (user space, every thread of the app), "
          f"{args.writes} writes one at a time after {args.warmup}")
    print("| database | " + " | ".join(sets) + " |")
    print("|---|" + "---:|" * len(sets))
    for kind in kinds:
        cells = []
        for plugins in sets:
            value = results.get((kind, plugins))
            base = results.get((kind, "none"))
            if value is None:
                cells.append("")
            elif base and plugins != "none":
                cells.append(f"{value:,.0f} ({value / base:.2f}x)")
            else:
                cells.append(f"{value:,.0f}")
        print(f"| {kind} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
