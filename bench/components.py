#!/usr/bin/env python3
"""Sandboxed plugins (WebAssembly components) against native ones, through
the real app (bench/run.py --only components, or this script alone):

    python3 bench/components.py [--quick] [--debug]

1. calls:   POST /api/users with the probe component (tests/components/probe:
            `authenticate`, `on_user_created`, `after_user_created`, none of
            them calling a service) kept warm (the default pool) and with
            `warm_instances = 0` (a fresh instance per call), against no
            plugin: requests/s and the server's CPU time per request; the
            difference per request is what the component calls cost.
2. writes:  POST /api/users with autoinvite (one `on_user_created` that
            calls the `add_member` service once per open space, 5 spaces)
            as the native library and as the component built from the same
            source, SQLite and PostgreSQL; target: the component >= 90%.
3. startup: 50 component plugins (the probe, each copy made distinct by a
            custom section, so that none shares a cache entry), process start
            to the first 200 of /health: cold (compiled, then cached) and
            warm (from the cache; target < 200 ms), against no plugin; and
            the resident memory per loaded component (idle RSS delta / 50).
4. binary:  the bytes of the engine (wasmtime, cranelift, wasmparser, ...)
            in the app's binary, from its symbol table.
5. call:    one hook call into a component against the same plugin native,
            no service call and one, without HTTP or a database
            (bench/component_call.py: wall time, and callgrind instructions
            unless --quick).

Writes bench/results/components.json (quick/debug runs: bench/results/quick/).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import component_call  # noqa: E402
import load  # noqa: E402
from load import App, Database, log, wrk  # noqa: E402

ROOT = HERE.parent
COMPONENTS = 50
OPEN_SPACES = 5
STARTUP_TARGET_MS = 200


# --- components to load ------------------------------------------------------

def probe() -> Path:
    """The probe, built as the tests build it (into target/components)."""
    target = ROOT / "target" / "components"
    subprocess.run(["cargo", "build", "--quiet", "--target", "wasm32-wasip2", *load.COMPONENT_ARGS,
                    "--manifest-path", str(ROOT / "tests/components/probe/Cargo.toml"),
                    "--target-dir", str(target)], check=True)
    return target / "wasm32-wasip2" / load.COMPONENT_PROFILE / "app_plugin_probe.wasm"


def autoinvite() -> Path:
    """The shipped autoinvite as a component, built as tests/both_ways.rs
    builds it: its library is a dylib, the same source a cdylib."""
    subprocess.run(["cargo", "rustc", "--quiet", "--target", "wasm32-wasip2", *load.COMPONENT_ARGS,
                    "--crate-type", "cdylib", "-p", "app_plugin_autoinvite"], cwd=ROOT, check=True)
    return ROOT / "target" / "wasm32-wasip2" / load.COMPONENT_PROFILE / "app_plugin_autoinvite.wasm"


def leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def distinct(component: bytes, salt: str) -> bytes:
    """`component` with a custom section appended: the same plugin, another
    hash (so another cache entry)."""
    name = b"bench-salt"
    payload = leb128(len(name)) + name + salt.encode()
    return component + b"\x00" + leb128(len(payload)) + payload


def config(work: Path, text: str) -> dict[str, str]:
    path = work / "app.toml"
    path.write_text(text)
    return {"APP_CONFIG": str(path), "RUST_LOG": "warn"}


# --- 1 and 2: requests --------------------------------------------------------

def users_run(kind: str, pg: str | None, folder: Path | None, toml: str,
              duration: float, spaces: int = 0) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-comp-") as tmp, \
            tempfile.TemporaryDirectory(prefix="bench-comp-empty-") as empty:
        work = Path(tmp)
        db = Database(kind, work, pg)
        try:
            app = App(load.APP, work, database=db, plugins_dir=folder or Path(empty),
                      env=config(work, toml))
            try:
                for i in range(spaces):
                    status, _ = app.request("POST", "/api/spaces",
                                            {"name": f"open {i}", "access": "open"})
                    assert status == 201, status
                run = wrk(app, "/api/users", duration=duration, connections=8,
                          script="writes.lua", args=("users", load.TOKEN, f"c{time.time_ns()}"))
            finally:
                app.stop()
            run["rows"] = db.scalar("SELECT count(*) FROM users")
            run["memberships"] = db.scalar("SELECT count(*) FROM memberships")
            if spaces and run["memberships"] < run["created"] * spaces:
                raise RuntimeError(f"autoinvite missed members: {run}")
            return {k: run[k] for k in ("rps", "server_cpu_us_per_request", "created", "rows",
                                        "memberships", "non2xx") if k in run}
        finally:
            db.drop()


def one_plugin(work: Path, file: Path, name: str) -> Path:
    folder = work / f"plugins-{name}-{file.suffix.lstrip('.')}"
    folder.mkdir()
    shutil.copy(file, folder / (f"app_plugin_{name}.wasm" if file.suffix == ".wasm" else file.name))
    return folder


def measure_calls(duration: float) -> dict:
    wasm = probe()
    with tempfile.TemporaryDirectory(prefix="bench-comp-dirs-") as tmp:
        folder = one_plugin(Path(tmp), wasm, "probe")
        runs = {}
        for label, folder_, sandbox in (("none", None, ""),
                                        ("component_pooled", folder, ""),
                                        ("component_fresh", folder, "warm_instances = 0\n")):
            log(f"components calls: {label}")
            toml = f"[plugins.probe.sandbox]\n{sandbox}" if folder_ else ""
            runs[label] = users_run("sqlite", None, folder_, toml, duration)
    cpu = {k: v["server_cpu_us_per_request"] for k, v in runs.items()}
    return {"runs": runs,
            "pooled_hooks_cpu_us_per_request": cpu["component_pooled"] - cpu["none"],
            "fresh_hooks_cpu_us_per_request": cpu["component_fresh"] - cpu["none"]}


def measure_writes(duration: float) -> dict:
    wasm = autoinvite()
    native = load.BUILD / "libapp_plugin_autoinvite.so"
    pg = load.postgres_url()
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-comp-dirs-") as tmp:
        builds = {"native": one_plugin(Path(tmp), native, "autoinvite"),
                  "component": one_plugin(Path(tmp), wasm, "autoinvite")}
        for kind in ("sqlite", "postgres"):
            if kind == "postgres" and pg is None:
                out.append({"database": kind, "skipped": "no PostgreSQL server"})
                continue
            row = {"database": kind}
            for build, folder in builds.items():
                log(f"components writes: {kind}, autoinvite {build}")
                row[build] = users_run(kind, pg, folder, "", duration, OPEN_SPACES)
            row["component_vs_native"] = row["component"]["rps"] / row["native"]["rps"]
            out.append(row)
    return {"open_spaces": OPEN_SPACES, "runs": out}


# --- 3: startup and memory ----------------------------------------------------

class PatientApp(App):
    """An app given minutes to start: a cold start compiles 50 components
    (a debug build's compiler is slow)."""

    def wait_ready(self, timeout: float = 600) -> None:
        super().wait_ready(timeout)


def start_ms(folder: Path, work: Path) -> tuple[float, int]:
    """Process start to the first 200 of /health, and the idle RSS (kB)."""
    db = Database("sqlite", work)
    started = time.monotonic()
    app = PatientApp(load.APP, work, database=db, plugins_dir=folder, env=config(work, ""))
    took = (time.monotonic() - started) * 1000
    try:
        if any(folder.iterdir()):
            app.check_loaded([f"c{i:02d}" for i in range(COMPONENTS)])
        time.sleep(0.5)
        rss = app.rss_kb()
    finally:
        app.stop()
    (work / "app.db").unlink(missing_ok=True)
    return took, rss


def measure_startup(runs: int) -> dict:
    component = probe().read_bytes()
    result: dict[str, list] = {"none": [], "cold": [], "warm": [], "rss_none_kb": [],
                               "rss_50_kb": []}
    with tempfile.TemporaryDirectory(prefix="bench-comp-start-") as tmp:
        tmp = Path(tmp)
        empty = tmp / "empty"
        empty.mkdir()
        for run in range(runs):
            folder = tmp / f"run{run}"
            folder.mkdir()
            salt = f"{os.getpid()}-{time.time_ns()}"
            for i in range(COMPONENTS):
                (folder / f"app_plugin_c{i:02d}.wasm").write_bytes(distinct(component, f"{salt}-{i}"))
            log(f"components startup: run {run + 1}/{runs}")
            took, rss = start_ms(empty, tmp)
            result["none"].append(took)
            result["rss_none_kb"].append(rss)
            result["cold"].append(start_ms(folder, tmp)[0])
            took, rss = start_ms(folder, tmp)
            result["warm"].append(took)
            result["rss_50_kb"].append(rss)
            shutil.rmtree(folder)
    med = {k: statistics.median(v) for k, v in result.items()}
    return {"runs": result, "median_ms": {k: med[k] for k in ("none", "cold", "warm")},
            "warm_target_ms": STARTUP_TARGET_MS,
            "rss_per_component_kb": (med["rss_50_kb"] - med["rss_none_kb"]) / COMPONENTS}


# --- 4: the engine's bytes ------------------------------------------------------

# The crates the component runtime brings (a symbol counts by the crate its
# path starts with, a trait impl by its self type's).
ENGINE = re.compile(r"<?&?(mut )?(wasmtime|cranelift|wasmparser|wasm_encoder|wit_parser|"
                    r"wasmprinter|regalloc2|pulley|cap_std|cap_primitives|cap_fs_ext|cap_time_ext|"
                    r"cap_net_ext|cap_rand|wasi|gimli|object|fxprof|ittapi|io_extras|"
                    r"system_interface|winch)\w*::")


def measure_binary() -> dict:
    """The bytes of the engine's symbols in the app's binary (app-main; `app`
    is its launcher), against all its symbols, from its symbol table."""
    binary = load.BUILD / "app-main"
    out = subprocess.run(["nm", "-S", "--size-sort", "-C", str(binary)],
                         capture_output=True, text=True, check=True).stdout
    total = engine = 0
    for line in out.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 4 or parts[2] in "Nn":
            continue
        size = int(parts[1], 16)
        total += size
        if ENGINE.match(parts[3]):
            engine += size
    return {"binary": binary.name, "file_bytes": binary.stat().st_size,
            "symbol_bytes": total, "engine_symbol_bytes": engine}


# --- the part ------------------------------------------------------------------

def measure(quick: bool) -> dict:
    duration = 2 if quick else 10
    return {"calls": measure_calls(duration), "writes": measure_writes(duration),
            "startup": measure_startup(1 if quick else 5), "binary": measure_binary(),
            "call": component_call.measure(quick),
            "build": "debug" if load.DEBUG else "release"}


def markdown(r: dict) -> str:
    c, s, b = r["calls"], r["startup"], r["binary"]
    lines = ["| POST /api/users, SQLite | requests/s | server CPU µs/request |", "|---|---:|---:|"]
    for label, run in c["runs"].items():
        lines.append(f"| {label} | {run['rps']:,.0f} | {run['server_cpu_us_per_request']:,.0f} |")
    lines += ["", f"Component hooks per request: {c['pooled_hooks_cpu_us_per_request']:,.0f} µs "
              f"CPU warm, {c['fresh_hooks_cpu_us_per_request']:,.0f} µs with a fresh instance "
              "per call.", "",
              "| autoinvite | database | native req/s | component req/s | component/native |",
              "|---|---|---:|---:|---:|"]
    for row in r["writes"]["runs"]:
        if "skipped" in row:
            lines.append(f"| | {row['database']} | skipped: {row['skipped']} | | |")
            continue
        lines.append(f"| {OPEN_SPACES} open spaces | {row['database']} | "
                     f"{row['native']['rps']:,.0f} | {row['component']['rps']:,.0f} | "
                     f"{row['component_vs_native']:.0%} |")
    m = s["median_ms"]
    lines += ["", f"Startup, median: no plugin {m['none']:,.0f} ms; 50 components cold "
              f"(compiling) {m['cold']:,.0f} ms; warm (cached) {m['warm']:,.0f} ms "
              f"(target < {STARTUP_TARGET_MS}). Resident memory per loaded component: "
              f"{s['rss_per_component_kb']:,.0f} kB.", "",
              f"Engine in {b['binary']}: {b['engine_symbol_bytes'] / 2**20:,.1f} MiB of "
              f"{b['symbol_bytes'] / 2**20:,.1f} MiB of symbols ({r['build']} build).", "",
              component_call.markdown(r["call"]) if "call" in r else ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args()
    load.select_build(args.debug)
    os.chdir(ROOT)
    result = measure(args.quick)
    out = load.results_dir(args.quick) / "components.json"
    out.write_text(json.dumps(result, indent=1))
    print(markdown(result))


if __name__ == "__main__":
    main()
