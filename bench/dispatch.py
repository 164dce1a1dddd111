#!/usr/bin/env python3
"""Hook dispatch, side by side: pluggy 1.7 vs hooks-core vs a hand-written loop.

Runs bench/pluggy_side.py (pluggy's side) and the criterion benchmark
`cargo bench -p hooks-bench --bench dispatch` (ours: same scenario names,
sync and async) one after the other on this machine, then prints one table
(Markdown) with ns per call and the ratios, and writes everything as JSON to
bench/results/dispatch.json (bench/results/quick/ for --quick or --debug).
bench/run.py runs it with the rest.

    python3 bench/dispatch.py            # this part alone (about 3 minutes)
    python3 bench/dispatch.py --quick    # smoke run
    python3 bench/dispatch.py --quick --debug   # unoptimized: checks the script

pluggy is installed into bench/.venv (pip install pluggy==1.7.0) on first use.
Numbers are per call: `min` (least noisy on a shared machine) and `median`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import load

ROOT = Path(__file__).resolve().parent.parent
PLUGGY_SIDE = ROOT / "bench" / "pluggy_side.py"
VENV = ROOT / "bench" / ".venv"

CALLS = [
    "reference/empty-result",
    "reference/manual-loop-0",
    "reference/manual-loop-1",
    "reference/manual-loop-10",
    "reference/manual-loop-100",
    "call/0-impls",
    "call/1-impl",
    "call/10-impls",
    "call/100-impls",
    "call/10-impls+5-wrappers",
    "first/100-impls-hit@50",
]
REGISTER = ["register/100-plugins", "register/1000-plugins", "register/5000-plugins"]
# The hand-written loop each scenario is held against (same number of impls run).
REFERENCE = {
    "call/0-impls": "reference/manual-loop-0",
    "call/1-impl": "reference/manual-loop-1",
    "call/10-impls": "reference/manual-loop-10",
    "call/100-impls": "reference/manual-loop-100",
}


def run(cmd: list[str], **kw) -> None:
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, **kw)


def venv_python() -> Path:
    """bench/.venv's python (pluggy, matplotlib), made on first use."""
    python = VENV / "bin" / "python"
    if not python.exists():
        run([sys.executable, "-m", "venv", str(VENV)])
    return python


def pluggy_side(quick: bool) -> dict:
    """pluggy's numbers, from bench/pluggy_side.py in bench/.venv."""
    python = venv_python()
    probe = subprocess.run(
        [str(python), "-c", "import pluggy; print(pluggy.__version__)"],
        capture_output=True, text=True,
    )
    if probe.stdout.strip() != "1.7.0":
        run([str(python), "-m", "pip", "install", "-q", "pluggy==1.7.0"])
    out = load.results_dir(quick) / "pluggy.json"
    cmd = [str(python), str(PLUGGY_SIDE), "--json", str(out)] + (["--quick"] if quick else [])
    run(cmd, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def rust_side(quick: bool, bench: str = "dispatch") -> dict[str, dict]:
    """Runs one criterion benchmark of hooks-bench; its results by id."""
    if load.DEBUG:
        # The dev profile shares the workspace's debug build (the SDK's
        # features are pinned, so nothing `cargo test` built is rebuilt).
        target, profile = ROOT / "target", ["--profile", "dev"]
    else:
        # Its own target directory: the bench profile differs from release
        # (line tables), and would rebuild the release SDK library, whose
        # name has no hash, under the release app.
        target, profile = ROOT / "target" / "bench", []
    args = ["cargo", "bench", *profile, "-p", "hooks-bench", "--bench", bench, "--"]
    if quick:
        # Criterion's own quick mode: each benchmark stops as soon as two
        # measurements agree within 5% (the groups set their sample counts
        # and times, which overrule any given here). No plots and fewer
        # bootstrap resamples: nothing here reads them, and unoptimized
        # (--debug) they took a minute per benchmark.
        args += ["--quick", "--noplot", "--nresamples", "1000"]
    env = dict(os.environ, CARGO_TARGET_DIR=str(target))
    run(args, cwd=ROOT, stdout=subprocess.DEVNULL, env=env)
    found = {}
    for path in (target / "criterion").rglob("new/benchmark.json"):
        meta = json.loads(path.read_text())
        sample = json.loads((path.parent / "sample.json").read_text())
        per_iter = [t / n for t, n in zip(sample["times"], sample["iters"])]
        found[meta["full_id"]] = {
            "ns_min": min(per_iter),
            "ns_median": statistics.median(per_iter),
        }
    return found


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "rustc": rustc,
        "python": platform.python_version(),
    }


def fmt_ns(ns: float | None) -> str:
    if ns is None:
        return "-"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.1f} ns"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.1f}x"


def table(env: dict, pluggy: dict, ours: dict) -> str:
    py_calls = {r["scenario"]: r for r in pluggy["calls"]}
    py_regs = {r["scenario"]: r for r in pluggy["register"]}
    lines = [
        f"Measured {env['date']} on {env['cpu']} ({env['cores']} cores), {env['platform']}; "
        f"{env['rustc']}; pluggy {pluggy['env']['pluggy']} on Python {pluggy['env']['python']}. "
        "Minimum ns per call over all samples (criterion for Rust, timeit for pluggy).",
        "",
        "| scenario | pluggy | hooks-core sync | hooks-core async | hand loop sync | hand loop async "
        "| pluggy / sync | pluggy / async | sync / hand loop | async / hand loop |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in CALLS + REGISTER:
        if name in REGISTER:
            py = py_regs.get(name)
            py_ns = py["total_ms_min"] * 1e6 if py else None
        else:
            py = py_calls.get(name)
            py_ns = py["ns_per_call_min"] if py else None
        sync = ours.get(f"sync/{name}", {}).get("ns_min")
        asy = ours.get(f"async/{name}", {}).get("ns_min")
        ref = REFERENCE.get(name)
        ref_sync = ours.get(f"sync/{ref}", {}).get("ns_min") if ref else None
        ref_async = ours.get(f"async/{ref}", {}).get("ns_min") if ref else None
        if name.startswith("reference/"):
            lines.append(
                f"| {name} | {fmt_ns(py_ns)} | | | {fmt_ns(sync)} | {fmt_ns(asy)} "
                f"| {ratio(py_ns, sync)} | {ratio(py_ns, asy)} | | |"
            )
            continue
        lines.append(
            f"| {name} | {fmt_ns(py_ns)} | {fmt_ns(sync)} | {fmt_ns(asy)} | {fmt_ns(ref_sync)} "
            f"| {fmt_ns(ref_async)} | {ratio(py_ns, sync)} | {ratio(py_ns, asy)} "
            f"| {ratio(sync, ref_sync)} | {ratio(asy, ref_async)} |"
        )
    return "\n".join(lines)


def measure(quick: bool) -> dict:
    """Both sides, one after the other; the table as Markdown in `table`."""
    env = machine()
    pluggy = pluggy_side(quick)
    ours = rust_side(quick)
    return {"env": env, "pluggy": pluggy, "hooks_core": ours, "table": table(env, pluggy, ours)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    ap.add_argument("--debug", action="store_true",
                    help="criterion on the dev profile (numbers meaningless; checks the script)")
    args = ap.parse_args()
    load.select_build(args.debug)
    result = measure(args.quick)
    (load.results_dir(args.quick) / "dispatch.json").write_text(json.dumps(result, indent=2))
    print(result["table"])


if __name__ == "__main__":
    main()
