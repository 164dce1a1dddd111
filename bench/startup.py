#!/usr/bin/env python3
"""Startup with 50 generated plugins (BENCHMARKS.md, "Targets").

Target: 50 plugins discovered, fingerprint-checked, loaded and registered,
from process start to the first HTTP 200 on `GET /health`, in under 200 ms
(compilation excluded).

What it does, all outside this repository's own build folders:

1. Copies the workspace sources (`git ls-files`, read from the working tree)
   into a scratch workspace, `target/bench-startup/ws`, refreshed in place
   between runs (only changed files are rewritten, files no longer listed
   are deleted, so rebuilds stay incremental). The copy leaves out the
   shipped plugins (`plugins/app_plugin_*`), the end-to-end test crate and
   its fixtures (`tests/`) and the benchmark crates (`bench/`), and its root
   Cargo.toml lists its members accordingly.
2. `cargo build --release` in the copy (`CARGO_TARGET_DIR=target/bench-startup`;
   with --debug, `cargo build`: a debug build, quicker to make, that only
   checks the script).
3. `app plugin new bench_00` ... `bench_49` with the copy's own app binary
   (the scaffolding command users run), skipping those already generated.
4. `cargo build --release` again: the 50 plugin dylibs, and the SDK and app
   whose fingerprint covers the Cargo.lock that now lists them.
5. Starts the release app N times per case, interleaved (default 15,
   `--quick` 3), and times process start -> first 200 on `GET /health`:
   `no_plugins` (empty plugin folder), `generated_50` (fresh database: the
   migrations run) and `generated_50_warm` (an existing database). Every
   run is checked through `GET /api/admin/plugins`: exactly the expected
   plugins, all loaded, each with its route.

`python3 bench/startup.py [--quick] [--debug]` writes
bench/results/startup.json (bench/results/quick/ for --quick or --debug) and
prints a table; `measure(quick)` returns the same dict (import-safe: all
work happens in functions; progress goes to stderr).
"""

from __future__ import annotations

import argparse
import calendar
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import load

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "target" / "bench-startup"
WS = TARGET / "ws"
STATE = TARGET / "state.json"

PLUGINS = 50
NAMES = [f"bench_{i:02d}" for i in range(PLUGINS)]
PREFIX = "app_plugin_"
TARGET_MS = 200
RUNS_FULL = 15
RUNS_QUICK = 3
START_TIMEOUT_S = 60
CASES = ("no_plugins", "generated_50", "generated_50_warm")

# Workspace members the copy does without (they are not copied): the
# end-to-end tests and their fixtures, and any benchmark crate.
def _dropped_member(member: str) -> bool:
    return member.split("/")[0] in ("tests", "bench")


class BenchError(RuntimeError):
    """Something is wrong with the build or with what the app did."""


def log(message: str) -> None:
    print(f"[startup] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# 1. The scratch workspace
# --------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load_state() -> dict:
    try:
        return json.loads(STATE.read_text())
    except (OSError, ValueError):
        return {}


def _save_state(state: dict) -> None:
    STATE.parent.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps(state, indent=2, sort_keys=True))


def _copied(rel: str) -> bool:
    """Whether a listed file belongs in the copy."""
    parts = rel.split("/")
    if parts[0] in ("tests", "bench"):
        return False
    if parts[0] == ".cargo" and ROOT in WS.parents:
        # cargo reads .cargo/config.toml in every folder from the working
        # directory up: the copy, inside ROOT, gets ROOT's already. A second
        # copy would double the flags (and the SDK's fingerprint with them).
        return False
    if parts[0] == "plugins" and len(parts) > 1 and parts[1].startswith(PREFIX):
        return False  # the shipped plugins: only the generated ones are loaded
    return True


def _generated(rel: str) -> bool:
    parts = rel.split("/")
    return (
        len(parts) > 2
        and parts[0] == "plugins"
        and parts[1] in {PREFIX + n for n in NAMES}
    )


def _edit_root_manifest(text: str) -> str:
    """The root Cargo.toml without the members the copy leaves out (and
    without `plugins/*` until a plugin exists: cargo refuses a glob that
    matches nothing)."""
    no_plugins = not any((WS / "plugins").glob(f"{PREFIX}*/Cargo.toml"))

    def members(match: re.Match) -> str:
        kept = [
            m
            for m in re.findall(r'"([^"]*)"', match.group(2))
            if not _dropped_member(m) and not (no_plugins and m == "plugins/*")
        ]
        return match.group(1) + "[" + ", ".join(f'"{m}"' for m in kept) + "]"

    edited, count = re.subn(
        r"(?m)^(\s*(?:default-)?members\s*=\s*)\[([^\]]*)\]", members, text
    )
    if count == 0:
        raise BenchError("the root Cargo.toml has no `members = [...]` to edit")
    return edited


def _write_if_changed(path: Path, data: bytes, mode: int | None = None) -> bool:
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".bench-tmp")
    tmp.write_bytes(data)
    if mode is not None:
        os.chmod(tmp, mode & 0o755)
    os.replace(tmp, path)
    return True


def sync_workspace(state: dict) -> None:
    """Makes WS a copy of the working tree's listed files (minus the parts
    the benchmark leaves out), keeping the generated plugins."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"],
        check=True,
        capture_output=True,
    ).stdout.decode().split("\0")
    wanted: set[str] = set()
    changed: list[str] = []
    for rel in filter(None, listed):
        if not _copied(rel):
            continue
        src = ROOT / rel
        if not src.is_file():
            continue  # deleted in the working tree
        wanted.add(rel)
        dest = WS / rel
        data = src.read_bytes()
        if rel == "Cargo.toml":
            data = _edit_root_manifest(data.decode()).encode()
        elif rel == "Cargo.lock":
            # cargo rewrites the copy's lock (50 more members, fewer
            # packages): replace it only when the original changed, or the
            # rewrite would change the SDK fingerprint at every run.
            digest = _sha256(data)
            if dest.is_file() and state.get("lock_sha256") == digest:
                continue
            state["lock_sha256"] = digest
        if _write_if_changed(dest, data, src.stat().st_mode):
            changed.append(rel)
    removed: list[str] = []
    if WS.is_dir():
        for dirpath, dirnames, filenames in os.walk(WS, topdown=False):
            for name in filenames:
                path = Path(dirpath) / name
                rel = path.relative_to(WS).as_posix()
                if rel not in wanted and not _generated(rel):
                    path.unlink()
                    removed.append(rel)
            for name in dirnames:
                try:
                    (Path(dirpath) / name).rmdir()  # only if empty
                except OSError:
                    pass
    def names(files: list[str]) -> str:
        return f" ({', '.join(files[:6])}{', ...' if len(files) > 6 else ''})" if files else ""

    log(
        f"workspace copy {WS}: {len(changed)} file(s) written{names(changed)}, "
        f"{len(removed)} removed{names(removed)}"
    )


# --------------------------------------------------------------------------
# 2-4. Build, scaffold, build
# --------------------------------------------------------------------------


def _cargo_env() -> dict:
    env = dict(os.environ)
    env["CARGO_TARGET_DIR"] = str(TARGET)
    # .cargo/config.toml's flags (prefer-dynamic, rpath) must apply as is.
    for var in ("RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS"):
        env.pop(var, None)
    if load.DEBUG:
        # A debug build made once, from scratch, to check the script: no
        # debug info and no incremental caches make it quicker to build
        # and link (51 libraries and the app), and touch nothing else.
        env.update(CARGO_PROFILE_DEV_DEBUG="0", CARGO_INCREMENTAL="0")
    return env


def _profile() -> str:
    """The copy's build: release, or debug after load.select_build(debug=True)."""
    return "debug" if load.DEBUG else "release"


def cargo_build(label: str) -> float:
    cmd = ["cargo", "build"] + ([] if load.DEBUG else ["--release"])
    log(f"{label}: {' '.join(cmd)} in {WS}")
    started = time.perf_counter()
    done = subprocess.run(
        cmd,
        cwd=WS,
        env=_cargo_env(),
        stdout=sys.stderr,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"{label}: {' '.join(cmd)} failed ({done.returncode})")
    log(f"{label}: {elapsed:.1f} s")
    return elapsed


def app_binary() -> Path:
    return TARGET / _profile() / "app"


def _template_digest() -> str:
    """The fingerprint of the scaffolding template: every file under the
    copy's app/src whose path names `scaffold` (wherever the CLI keeps it)."""
    src = WS / "app" / "src"
    files = sorted(p for p in src.rglob("*")
                   if p.is_file() and "scaffold" in p.relative_to(src).as_posix())
    if not files:
        raise BenchError(f"no scaffolding template (a file named scaffold*) under {src}")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(src).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def generate_plugins(state: dict) -> tuple[int, float]:
    """`app plugin new bench_NN` for each missing plugin. Plugins made by an
    older template (scaffold.rs changed since) are made again."""
    plugins = WS / "plugins"
    template = _template_digest()
    if state.get("scaffold_sha256") != template:
        for name in NAMES:
            shutil.rmtree(plugins / (PREFIX + name), ignore_errors=True)
    plugins.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    for var in ("APP_CONFIG", "APP_DATA_DIR", "DATABASE_URL", "APP_LISTEN", "APP_ADMIN_TOKEN"):
        env.pop(var, None)
    env["APP_PLUGINS_DIR"] = str(plugins)
    made = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-startup-cwd-") as cwd:
        for name in NAMES:
            if (plugins / (PREFIX + name) / "Cargo.toml").is_file():
                continue
            done = subprocess.run(
                [str(app_binary()), "plugin", "new", name],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise BenchError(
                    f"app plugin new {name} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                )
            made += 1
    state["scaffold_sha256"] = template
    elapsed = time.perf_counter() - started
    log(f"generated {made} plugin(s) ({PLUGINS - made} already there) in {elapsed:.2f} s")
    return made, elapsed


def prepare() -> dict:
    """Steps 1-4; returns what the builds took."""
    state = _load_state()
    sync_workspace(state)
    _save_state(state)
    first = cargo_build("build 1 (app)")
    made, gen_s = generate_plugins(state)
    _save_state(state)
    sync_workspace(state)  # the root manifest lists plugins/* now
    second = cargo_build("build 2 (app + 50 plugins)")
    binary = app_binary()
    missing = [
        n for n in NAMES if not (TARGET / _profile() / f"lib{PREFIX}{n}.so").is_file()
    ]
    if not binary.is_file() or missing:
        raise BenchError(f"build incomplete: app={binary.is_file()}, missing plugin libraries {missing}")
    return {
        "build_1_s": round(first, 1),
        "generate_s": round(gen_s, 2),
        "plugins_generated": made,
        "build_2_s": round(second, 1),
    }


# --------------------------------------------------------------------------
# 5. Measure
# --------------------------------------------------------------------------

_LOG_LINE = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z\s+(\w+)\s+([^:\s]+(?:::[^:\s]+)*):\s(.*)$"
)


def _log_time_ns(line: str) -> int | None:
    """The wall-clock time (ns since the epoch) of a tracing fmt line."""
    m = _LOG_LINE.match(line)
    if not m:
        return None
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = (m.group(7) or "0")[:9].ljust(9, "0")
    return calendar.timegm((y, mo, d, h, mi, s)) * 1_000_000_000 + int(frac)


def _check_plugins(app: load.App, expected: list[str]) -> None:
    status, report = app.request("GET", "/api/admin/plugins")
    if status != 200:
        raise BenchError(f"GET /api/admin/plugins: {status} {str(report)[:500]}")
    plugins = {p["name"]: p for p in report["plugins"] if p["name"] != "app"}
    problems = []
    if sorted(plugins) != sorted(expected):
        problems.append(f"plugins {sorted(plugins)}, expected {len(expected)}: {expected[:3]}...")
    bad = {n: p["status"] for n, p in plugins.items() if p["status"] != "loaded"}
    if bad:
        problems.append(f"not loaded: {bad}")
    routes = {r["plugin"] for r in report.get("routes", [])}
    if routes != set(expected):
        problems.append(f"plugins with routes: {len(routes)}, expected {len(expected)}")
    if problems:
        raise BenchError("the app did not load what it should: " + "; ".join(problems)
                         + f"\nlog tail:\n{app.log_tail()}")


def run_once(binary: Path, plugins_dir: Path, data_dir: Path, cwd: Path, expected: list[str]) -> dict:
    """One start: ms from spawn to the first 200 on /health, plus log phases."""
    # A clean log (info), and no inherited library path: the copy's own
    # SDK library is the one the plugins were built against.
    env = {"RUST_LOG": "info", "LD_LIBRARY_PATH": None}
    try:
        app = load.App(binary, data_dir, database=load.Database("sqlite", data_dir),
                       plugins_dir=plugins_dir, env=env, cwd=cwd, follow_log=True,
                       ready_timeout=START_TIMEOUT_S)
    except RuntimeError as error:
        raise BenchError(str(error)) from None
    try:
        _check_plugins(app, expected)
    finally:
        stopped = app.stop(timeout=15)
    if not stopped:
        raise BenchError("the app did not stop within 15 s of SIGTERM")
    # -SIGTERM: the app was killed by the signal instead of shutting down
    # gracefully (its handler was not installed yet). Not a startup
    # failure: counted and reported.
    if app.proc.returncode not in (0, -signal.SIGTERM):
        raise BenchError(f"the app exited with {app.proc.returncode} after SIGTERM:\n"
                         + "".join(app.output[-20:]))
    return {
        "ms": app.ready_ms,
        "phases": _phases(app.output, app.spawned_ns, app.ready_ms),
        "killed_by_sigterm": app.proc.returncode == -signal.SIGTERM,
    }


def _phases(output: list[str], wall0: int, total_ms: float) -> dict | None:
    """Phases from the log's timestamps, relative to the spawn (wall clock)."""
    times = {}
    first = None
    for line in output:
        t = _log_time_ns(line)
        if t is None:
            continue
        if first is None:
            first = t
        if re.search(r"plugins: \d+ loaded", line):
            times["plugins_report"] = t
        elif "listening on" in line:
            times["listening"] = t
            break
    if first is None or "listening" not in times or "plugins_report" not in times:
        return None
    ms = lambda t: (t - wall0) / 1e6  # noqa: E731
    return {
        # exec, dynamic linking, runtime, config, database open + core
        # migrations, plugin discovery, checks, dlopen, registration
        "spawn_to_plugins_loaded": ms(times["plugins_report"]),
        # plugin migrations, on_plugins_loaded (routes), router, bind
        "plugins_loaded_to_listening": ms(times["listening"]) - ms(times["plugins_report"]),
        # the first request (and Python reading the line)
        "listening_to_200": total_ms - ms(times["listening"]),
    }


def _summary(values: list[float]) -> dict:
    return {
        "runs_ms": [round(v, 1) for v in values],
        "min": round(min(values), 1),
        "median": round(statistics.median(values), 1),
        "max": round(max(values), 1),
    }


def measure(quick: bool = False) -> dict:
    """Builds what is needed, then measures the three cases; returns the
    results dict (also written by main())."""
    runs = RUNS_QUICK if quick else RUNS_FULL
    build = prepare()
    binary = app_binary()
    plugins_dir = WS / "plugins"
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        tmp = Path(tmp)
        empty = tmp / "no-plugins"
        empty.mkdir()
        cwd = tmp / "cwd"  # no app.toml here
        cwd.mkdir()
        warm_dir = tmp / "warm"
        counter = iter(range(10**6))

        def fresh() -> Path:
            d = tmp / f"data-{next(counter)}"
            d.mkdir()
            return d

        cases = {
            "no_plugins": lambda: (empty, fresh(), []),
            "generated_50": lambda: (plugins_dir, fresh(), NAMES),
            "generated_50_warm": lambda: (plugins_dir, warm_dir, NAMES),
        }
        # Untimed: create the warm database, and bring every file into the
        # page cache, once per case.
        warm_dir.mkdir()
        for name, setup in cases.items():
            p, d, expected = setup()
            first = run_once(binary, p, d, cwd, expected)
            log(f"warm-up {name}: {first['ms']:.1f} ms")
        results: dict[str, list[dict]] = {name: [] for name in cases}
        # Interleaved rounds, so drift affects every case alike.
        for i in range(runs):
            for name, setup in cases.items():
                p, d, expected = setup()
                results[name].append(run_once(binary, p, d, cwd, expected))
                if d != warm_dir:
                    shutil.rmtree(d, ignore_errors=True)
            log(
                f"round {i + 1}/{runs}: "
                + ", ".join(f"{n} {r[-1]['ms']:.1f} ms" for n, r in results.items())
            )
    out = {
        "plugins": PLUGINS,
        "target_ms": TARGET_MS,
        "runs": runs,
        "cases": {name: _summary([r["ms"] for r in rs]) for name, rs in results.items()},
    }
    out["met"] = out["cases"]["generated_50"]["median"] < TARGET_MS
    killed = {n: sum(r["killed_by_sigterm"] for r in rs) for n, rs in results.items()}
    if any(killed.values()):
        # The app installs its SIGTERM handler lazily, after it logs
        # `listening on`: a SIGTERM soon after startup kills it outright.
        out["killed_by_sigterm"] = killed
        log(f"runs where SIGTERM killed the app instead of a graceful stop: {killed}")
    breakdown = {}
    for name, rs in results.items():
        phases = [r["phases"] for r in rs if r["phases"]]
        if phases:
            breakdown[name] = {
                k: round(statistics.median(p[k] for p in phases), 1) for k in phases[0]
            }
    if breakdown:
        breakdown["note"] = (
            "medians in ms, from the app's log timestamps relative to the spawn; "
            "spawn_to_plugins_loaded = exec + dynamic linking + database open and "
            "migrations + plugin discovery, checks, dlopen and registration"
        )
        out["breakdown"] = breakdown
    out["build"] = build
    return out


def table(results: dict) -> str:
    lines = [
        f"Startup to first 200 on /health ({results['runs']} runs each; target "
        f"< {results['target_ms']} ms with {results['plugins']} plugins)",
        "",
        "| case | min ms | median ms | max ms |",
        "|---|---:|---:|---:|",
    ]
    for name, c in results["cases"].items():
        lines.append(f"| {name} | {c['min']:.1f} | {c['median']:.1f} | {c['max']:.1f} |")
    lines.append("")
    lines.append(
        f"target met: {'yes' if results['met'] else 'NO'} "
        f"(generated_50 median {results['cases']['generated_50']['median']:.1f} ms)"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{RUNS_QUICK} runs per case instead of {RUNS_FULL}")
    parser.add_argument("--debug", action="store_true",
                        help="build and start the debug build (numbers meaningless; checks the script)")
    args = parser.parse_args()
    load.select_build(args.debug)
    try:
        results = measure(quick=args.quick)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    out = load.results_dir(args.quick) / "startup.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwritten to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
