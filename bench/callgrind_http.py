#!/usr/bin/env python3
"""Instructions per request, the app against bare hyper, under callgrind:

    cargo build --release -p app-bench --example bench-app
    python3 bench/callgrind_http.py                 # RUST_LOG=info and warn
    python3 bench/callgrind_http.py --log warn --top 40 --requests 2000

Unlike wall time or CPU time, instruction counts do not move with the
machine's load, so this can be run on a busy machine and compared from one
change to the next (BENCHMARKS.md, "Where a target is missed"). Only user
space is counted: the kernel's socket work, the same for the app and bare
hyper, is not.

bench-app runs under valgrind with only the `bench` plugin (no plugin
folder) on a fresh SQLite file, with bare hyper beside it
(BENCH_BARE_LISTEN). For each target: a keep-alive connection sends
`--warmup` requests, the counters are zeroed (`callgrind_control -z`), it
sends `--requests` more one after the other, waits for the access log's
thread to write its lines, and the counters are dumped (`-d`). Every thread
of the process is counted (the SQLite connections' threads and the log's
included). Prints instructions per request per target and, with `--top`,
the functions that cost the most per request (self cost) on the app's
`--top-target` route (`json` unless told).

`--faults` runs bench-app natively instead (no valgrind) and counts, per
request and target, the process's minor page faults and its threads'
context switches: what instruction counts do not see (memory the kernel
hands out afresh, threads woken), and as stable as they are on a busy
machine, since neither depends on timing much.
"""

from __future__ import annotations

import argparse
import http.client
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import load  # noqa: E402

TARGETS = [  # name, server, path
    ("json", "app", "/plugins/bench/json"),
    ("json", "bare", "/json"),
    ("json/:id", "app", "/plugins/bench/json/7"),
    ("json/:id", "bare", "/json/7"),
    ("db", "app", "/plugins/bench/db"),
    ("db", "bare", "/db"),
    ("/health", "app", "/health"),
]


def send(port: int, path: str, count: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(count):
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status}")
    conn.close()


def totals(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {dump}")


def run(binary: Path, log_level: str, warmup: int, requests: int, top: int,
        keep: Path | None, top_target: str = "json") -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as tmp:
        work = Path(tmp)
        (work / "plugins").mkdir()
        db = load.Database("sqlite", work)
        bare_port = load.free_port()
        out = work / "callgrind.out"
        wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                   "--dump-instr=no"]
        app = load.App(binary, work, database=db, plugins_dir=work / "plugins",
                       env={"RUST_LOG": log_level, "BENCH_BARE_LISTEN": f"127.0.0.1:{bare_port}"},
                       wrapper=wrapper, ready_timeout=300)
        port, proc = app.port, app.proc
        counts: dict[str, float] = {}
        try:
            for name, server, path in TARGETS:
                target_port = port if server == "app" else bare_port
                send(target_port, path, warmup)
                subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True,
                               capture_output=True)
                send(target_port, path, requests)
                time.sleep(0.5)  # the access log's thread writes what it was handed
                before = set(work.glob("callgrind.out*"))
                subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True,
                               capture_output=True)
                (dump,) = set(work.glob("callgrind.out*")) - before
                counts[f"{name} {server}"] = totals(dump) / requests
                if keep:
                    file = name.strip("/").replace("/:", "-")
                    kept = keep / f"callgrind.{log_level}.{file}.{server}.out"
                    kept.write_bytes(dump.read_bytes())
                if top and (name, server) == (top_target, "app"):
                    report = subprocess.run(["callgrind_annotate", "--threshold=100", str(dump)],
                                            capture_output=True, text=True).stdout
                    lines = [line for line in report.splitlines() if "(" in line]
                    print(f"--- RUST_LOG={log_level}: {name} route, app, self cost "
                          f"over {requests} requests")
                    print("\n".join(lines[:top]))
        finally:
            app.stop()
        return counts


def process_counts(pid: int) -> tuple[int, int]:
    """The process's minor page faults (every thread's) and its live
    threads' context switches, voluntary or not."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    switches = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except FileNotFoundError:  # a thread that just ended
            continue
        for line in status.splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                switches += int(line.split()[1])
    return int(fields[7]), switches  # field 10 of stat: minflt


def run_faults(binary: Path, log_level: str, warmup: int,
               requests: int) -> dict[str, tuple[float, float]]:
    """Page faults and context switches per request, per target, natively."""
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        work = Path(tmp)
        (work / "plugins").mkdir()
        db = load.Database("sqlite", work)
        bare_port = load.free_port()
        app = load.App(binary, work, database=db, plugins_dir=work / "plugins",
                       env={"RUST_LOG": log_level, "BENCH_BARE_LISTEN": f"127.0.0.1:{bare_port}"})
        counts: dict[str, tuple[float, float]] = {}
        try:
            for name, server, path in TARGETS:
                target_port = app.port if server == "app" else bare_port
                send(target_port, path, warmup)
                time.sleep(0.1)  # the warm-up's log lines written
                faults, switches = process_counts(app.proc.pid)
                send(target_port, path, requests)
                time.sleep(0.1)  # and these
                faults_after, switches_after = process_counts(app.proc.pid)
                counts[f"{name} {server}"] = ((faults_after - faults) / requests,
                                              (switches_after - switches) / requests)
        finally:
            app.stop()
        return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", choices=["info", "warn", "both"], default="both")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--top", type=int, default=0,
                        help="print the N costliest functions of the app's --top-target route")
    parser.add_argument("--top-target", default="json",
                        help="the target --top profiles (json, json/:id, db, /health)")
    parser.add_argument("--binary", type=Path, default=load.BENCH_APP,
                        help="the bench-app to run (default: the release build's)")
    parser.add_argument("--keep", type=Path,
                        help="copy each target's callgrind dump into this folder")
    parser.add_argument("--faults", action="store_true",
                        help="count page faults and context switches per request, natively")
    args = parser.parse_args()
    levels = ["info", "warn"] if args.log == "both" else [args.log]
    if args.faults:
        print(f"per request, {args.requests} requests after {args.warmup}: "
              "minor page faults / context switches (every thread)")
        print("| target | server | " + " | ".join(f"RUST_LOG={lv}" for lv in levels) + " |")
        print("|---|---|" + "---:|" * len(levels))
        native = {lv: run_faults(args.binary, lv, args.warmup, args.requests) for lv in levels}
        for name, server, _ in TARGETS:
            cells = [f"{native[lv][f'{name} {server}'][0]:.2f} / "
                     f"{native[lv][f'{name} {server}'][1]:.2f}" for lv in levels]
            print(f"| `{name}` | {server} | " + " | ".join(cells) + " |")
        return
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    results = {level: run(args.binary, level, args.warmup, args.requests, args.top, args.keep,
                          args.top_target)
               for level in levels}
    print(f"instructions per request (user space, every thread), {args.requests} requests")
    print("| target | " + " | ".join(f"RUST_LOG={lv}: bare hyper | app" for lv in levels) + " |")
    print("|---|" + "---:|---:|" * len(levels))
    for name in dict.fromkeys(n for n, _, _ in TARGETS):
        cells = []
        for level in levels:
            counts = results[level]
            bare = counts.get(f"{name} bare", counts.get("db bare"))
            app = counts[f"{name} app"]
            cells.append(f"{bare:,.0f} | {app:,.0f} ({app / bare:.2f}x)")
        print(f"| `{name}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
