#!/usr/bin/env python3
"""The whole performance report, with one command:

    python3 bench/run.py            # everything (about 20 minutes; +6 the first time)
    python3 bench/run.py --quick    # short runs, to check the harness
    python3 bench/run.py --quick --debug   # the same on the debug build (what CI runs)
    python3 bench/run.py --only http,writes

1. dispatch: hooks-core vs pluggy 1.7 vs a hand-written loop (dispatch.py)
2. growth:   on_user_created with 0..100 implementations, in the engine
             (criterion) and through the app (POST /api/users, wrk)
3. http:     plugin route vs core route vs bare hyper in the same process
4. writes:   POST users / PUT members, no plugins vs every shipped plugin,
             SQLite and PostgreSQL, acknowledged writes counted in the database
5. startup:  50 plugins made by `app plugin new`, process start to first 200
6. memory:   resident memory idle and under load (measured during `writes`)
7. components: sandboxed plugins against native ones: hook calls warm and
             fresh, writes with autoinvite both ways, startup with 50
             components cold and warm, memory per component, the engine's
             bytes in the binary (components.py)

Writes bench/results/: one JSON per part, results.csv (every number),
results.md (the tables) and report.svg / report.png (the chart), and puts
the tables into BENCHMARKS.md between its `results` markers. A --quick or
--debug run writes the same files into bench/results/quick/ instead (ignored
by git) and leaves BENCHMARKS.md alone: checking the harness never replaces
the measured numbers. --debug runs the debug build `cargo test` has made
(criterion unoptimized too), so it needs no release build. Needs cargo,
wrk (installed from Debian's packages if missing), python3; PostgreSQL is
used when BENCH_DATABASE_URL or TEST_DATABASE_URL names one or one answers
on 127.0.0.1:5432, and skipped (saying so) otherwise.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PARTS = ["dispatch", "growth", "http", "writes", "startup", "components"]


# The parts are the scripts beside this one, imported as modules; they share
# one `load` module, and with it the build they run (load.select_build).
sys.path.insert(0, str(HERE))
import components  # noqa: E402
import dispatch  # noqa: E402
import load  # noqa: E402
import startup  # noqa: E402


# --- measuring -------------------------------------------------------------

def measure(part: str, quick: bool) -> dict:
    if part == "dispatch":
        return dispatch.measure(quick)
    if part == "growth":
        engine = {k.removeprefix("growth/on_user_created/"): v
                  for k, v in dispatch.rust_side(quick, "growth").items()
                  if k.startswith("growth/")}
        points = [(n, engine[f"{n}-impls"]["ns_min"]) for n in load.GROWTH_SIZES]
        return {"engine": {"points": [{"impls": n, "ns": ns} for n, ns in points],
                           "fit": load.linear_fit(points)},
                "app": load.measure_app_growth(quick)}
    if part == "http":
        return load.measure_http(quick)
    if part == "writes":
        return load.measure_writes(quick)
    if part == "startup":
        return startup.measure(quick)
    if part == "components":
        return components.measure(quick)
    raise ValueError(part)


# --- reporting -------------------------------------------------------------

def fmt(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def growth_md(g: dict) -> str:
    eng, app = g["engine"], g["app"]
    lines = ["| implementations | engine: ns per call | app: mean us per POST /api/users | app: requests/s |",
             "|---:|---:|---:|---:|"]
    for e, a in zip(eng["points"], app["points"]):
        lines.append(f"| {e['impls']} | {fmt(e['ns'])} | {fmt(a['mean_us'])} | {fmt(a['rps'], 0)} |")
    ef, af = eng["fit"], app["fit"]
    lines += ["",
              f"Least-squares line: engine {fmt(ef['intercept'])} ns + {fmt(ef['slope'], 2)} ns per "
              f"implementation (largest departure from the line {fmt(ef['max_departure_pct'])}%); "
              f"app {fmt(af['intercept'])} us + {fmt(af['slope'] * 1000, 0)} ns per implementation "
              f"(largest departure {fmt(af['max_departure_pct'])}%)."]
    return "\n".join(lines)


# The targets of issue 21: server CPU per request against bare hyper doing
# the same work, by target and logging (None: the same as with the access log).
HTTP_CPU_TARGETS = {
    "plugin route /plugins/bench/json": {"default logging (info)": 1.25, "RUST_LOG=warn": 1.10},
    "plugin route /plugins/bench/db": {"default logging (info)": 1.25, "RUST_LOG=warn": 1.25},
    "core route /health": {"default logging (info)": 1.25, "RUST_LOG=warn": 1.25},
}


def http_md(h: dict) -> str:
    out = []
    for label, targets in h["configs"].items():
        out += [f"**{label}**", "",
                "| target | server CPU per request | CPU vs bare hyper, same work (target) "
                "| requests/s | vs bare hyper | p50 | p99 | errors |",
                "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, t in targets.items():
            work = name.rsplit("/", 1)[-1]
            bare = targets["bare hyper /json" if work == "json" else "bare hyper /db"]
            cpu = t["server_cpu_us_per_request"] / bare["server_cpu_us_per_request"]
            target = HTTP_CPU_TARGETS.get(name, {}).get(label)
            verdict = f" (at most {target:.2f}x: {'met' if cpu <= target else 'missed'})" if target else ""
            out.append(f"| {name} | {fmt(t['server_cpu_us_per_request'], 2)} us | {cpu:.2f}x{verdict} "
                       f"| {fmt(t['rps'], 0)} | {t['rps'] / bare['rps'] * 100:.0f}% "
                       f"| {fmt(t['p50_us'], 0)} us | {fmt(t['p99_us'], 0)} us | {t['errors']} |")
        out.append("")
    # The access log's cost: the json route's CPU above bare hyper's, with
    # the log and without (the db routes' round trips are noisier than the log).
    info, warn = h["configs"].get("default logging (info)"), h["configs"].get("RUST_LOG=warn")
    if info and warn:
        def above(c: dict) -> float:
            return (c["plugin route /plugins/bench/json"]["server_cpu_us_per_request"]
                    - c["bare hyper /json"]["server_cpu_us_per_request"])
        out.append(f"The access log's cost: the `json` plugin route's server CPU per request above "
                   f"bare hyper's is {fmt(above(info), 2)} us with the default logging and "
                   f"{fmt(above(warn), 2)} us with `RUST_LOG=warn`: "
                   f"{fmt(above(info) - above(warn), 2)} us per line.")
    return "\n".join(out).rstrip()


def writes_md(w: dict) -> str:
    lines = ["| database | plugins | operation | writes/s | p50 | p99 | server CPU per write "
             "| acknowledged | rows in the database | lost |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    mem = ["| database | plugins | idle | peak under load | after the load |", "|---|---|---:|---:|---:|"]
    for r in w["runs"]:
        if "skipped" in r:
            lines.append(f"| {r['database']} | skipped: {r['skipped']} | | | | | | | | |")
            continue
        for op, label in (("users", "POST /api/users"), ("members", "PUT /api/spaces/:id/members/:user_id")):
            x = r[op]
            lines.append(f"| {r['database']} | {r['plugins']} | {label} | {fmt(x['rps'], 0)} "
                         f"| {fmt(x['p50_us'] / 1000, 2)} ms | {fmt(x['p99_us'] / 1000, 2)} ms "
                         f"| {fmt(x['server_cpu_us_per_request'], 0)} us | {x['created']} | {x['rows']} "
                         f"| {x['lost']} |")
        m = r["rss_kb"]
        mem.append(f"| {r['database']} | {r['plugins']} | {m['idle'] / 1024:.1f} MiB "
                   f"| {m['under_load_peak'] / 1024:.1f} MiB | {m['after_load'] / 1024:.1f} MiB |")
    return "\n".join(lines) + "\n\nResident memory (VmRSS) of the same runs:\n\n" + "\n".join(mem)


def startup_md(s: dict) -> str:
    lines = ["| case | min | median | max |", "|---|---:|---:|---:|"]
    for name, c in s["cases"].items():
        lines.append(f"| {name} | {fmt(c['min'])} ms | {fmt(c['median'])} ms | {fmt(c['max'])} ms |")
    return "\n".join(lines)


SECTIONS = [
    ("dispatch", "Hook dispatch: hooks-core vs pluggy 1.7 vs a hand-written loop", lambda d: d["table"]),
    ("growth", "Cost growth with the number of implementations (on_user_created)", growth_md),
    ("http", "HTTP routes: plugin route vs core route vs bare hyper (same process, wrk)", http_md),
    ("writes", "Writes with hooks, and memory", writes_md),
    ("startup", "Startup with 50 scaffolded plugins (process start to first 200 on /health)", startup_md),
    ("components", "Components: sandboxed plugins against native ones", components.markdown),
]


def markdown(results: dict) -> str:
    env = results.get("env", {})
    out = [f"Measured {env.get('date')} on {env.get('cpu')} ({env.get('cores')} cores), "
           f"{env.get('platform')}; {env.get('rustc')}.", ""]
    for key, title, render in SECTIONS:
        if key in results:
            out += [f"### {title}", ""]
            own = results[key].get("env")
            rendered = render(results[key])
            if own and own.get("date") != env.get("date") and not rendered.startswith("Measured"):
                # A part run alone (--only) says when and where, unless its
                # table does (dispatch's).
                out += [f"Measured {own.get('date')} on {own.get('cpu')} ({own.get('cores')} cores), "
                        f"{own.get('platform')}.", ""]
            out += [rendered, ""]
    return "\n".join(out).rstrip() + "\n"


def rows(results: dict):
    """Every number, flattened: (part, path, value)."""
    def walk(part: str, prefix: str, value):
        if isinstance(value, dict):
            for k, v in value.items():
                yield from walk(part, f"{prefix}/{k}" if prefix else str(k), v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                key = v.get("impls", v.get("database", i)) if isinstance(v, dict) else i
                if isinstance(v, dict) and "database" in v and "plugins" in v:
                    key = f"{v['database']}-{v['plugins']}"
                yield from walk(part, f"{prefix}/{key}", v)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield part, prefix, value
    for part in PARTS:
        if part in results:
            yield from walk(part, "", {k: v for k, v in results[part].items()
                                       if k not in ("table", "env")})


def chart(folder: Path, venv_python: Path) -> None:
    """report.svg and report.png, drawn by chart.py in the bench venv."""
    probe = subprocess.run([str(venv_python), "-c", "import matplotlib"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(venv_python), "-m", "pip", "install", "-q", "matplotlib"], check=True)
    subprocess.run([str(venv_python), str(HERE / "chart.py"), str(folder / "results.json"),
                    str(folder / "report")], check=True)


def update_benchmarks_md(md: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text()
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
        path.write_text(f"{head}{begin}\n{md}{end}{tail}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs, to check the harness")
    ap.add_argument("--debug", action="store_true",
                    help="run the debug build (numbers meaningless; checks the harness)")
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated: {','.join(PARTS)}")
    ap.add_argument("--report", action="store_true",
                    help="measure nothing: redo the files, chart and tables from results.json")
    args = ap.parse_args()
    parts = [] if args.report else [p for p in args.only.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        ap.error(f"unknown parts: {', '.join(sorted(unknown))}")
    load.select_build(args.debug)
    scratch = args.quick or args.debug
    folder = load.results_dir(scratch)
    combined_path = folder / "results.json"
    results = json.loads(combined_path.read_text()) if combined_path.exists() else {}
    env = dispatch.machine()
    if set(parts) == set(PARTS) or (parts and "env" not in results):
        results["env"] = env
    if {"growth", "http", "writes", "components"} & set(parts):
        load.ensure_wrk()
        load.build()
    for part in parts:
        load.log(f"== {part}")
        results[part] = measure(part, args.quick)
        results[part]["env"] = env
        results[part]["quick"] = args.quick
        results[part]["debug_build"] = args.debug
        (folder / f"{part}.json").write_text(json.dumps(results[part], indent=2))
        combined_path.write_text(json.dumps(results, indent=2))
    with open(folder / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["part", "metric", "value"])
        writer.writerows(rows(results))
    md = markdown(results)
    (folder / "results.md").write_text(md)
    chart(folder, dispatch.venv_python())
    if not scratch:
        update_benchmarks_md(md)
    print(md)


if __name__ == "__main__":
    main()
