#!/usr/bin/env python3
"""One hook call into a sandboxed plugin against the same plugin native,
through the engine as the app calls a hook, without HTTP, a database or
the outbox (bench/call-bench):

    python3 bench/component_call.py [--quick] [--debug] [--top N]

The plugin (bench/call-bench/plugin) is one source: linked into the
harness natively, and built as a component for wasm32-wasip2.
`on_user_created` makes no service call; `on_user_modified` makes one
(`authorize`, which with a hook's authority the app answers without the
policy hook or the database: the crossing, not the service). Scenarios:

    native-N     the native plugin, N service calls (0 or 1)
    component-N  the component, warm instances (the default pool)
    fresh-N      the component with `warm_instances = 0`: an instance per call

For each: nanoseconds per call over COUNT calls (wall time: on a loaded
machine only a hint), and, unless --quick, instructions per call under
callgrind (every thread, user space): two runs of COUNT_LOW and
COUNT_HIGH calls, subtracted (the loading cancels out), which a busy
machine does not move. --top N prints the functions costing the most
(self cost, per call) in the component with one service call, the
component's own compiled code by wasm function: those two runs dump each
instruction's cost (`--dump-instr=yes`) and run with
APP_COMPONENT_PERFMAP=1, which has wasmtime write each compiled
function's address and name to /tmp/perf-PID.map (read, then removed).

pluggy's one-implementation call, for comparison, is the dispatch
benchmark's `call/1-impl` (bench/dispatch.py).

Writes bench/results/component_call.json (quick/debug runs:
bench/results/quick/).
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import load  # noqa: E402
from load import log  # noqa: E402

ROOT = HERE.parent
SCENARIOS = ["native-0", "native-1", "component-0", "component-1", "fresh-0", "fresh-1"]
COUNT = {"native": 200_000, "component": 20_000, "fresh": 1_000}
COUNT_LOW, COUNT_HIGH = {"native": 2_000, "component": 1_000, "fresh": 50}, \
    {"native": 12_000, "component": 6_000, "fresh": 250}
# The one-service-call target of issue 20 (wall time, on an idle machine).
TARGET_NS = 2_000


def build() -> tuple[Path, Path]:
    """The component (as the app builds a component crate) and the
    harness (the selected build)."""
    cmd = ["cargo", "rustc", "--quiet", "--target", "wasm32-wasip2", *load.COMPONENT_ARGS,
           "--lib", "--crate-type", "cdylib", "-p", "app_plugin_callbench"]
    log("+ " + " ".join(cmd))
    subprocess.run(cmd, cwd=ROOT, check=True)
    cmd = ["cargo", "build", "--quiet", "-p", "call-bench"] + ([] if load.DEBUG else ["--release"])
    log("+ " + " ".join(cmd))
    subprocess.run(cmd, cwd=ROOT, check=True)
    return (ROOT / f"target/wasm32-wasip2/{load.COMPONENT_PROFILE}/app_plugin_callbench.wasm",
            load.BUILD / "call-bench")


def wall(binary: Path, wasm: Path, scenario: str, count: int) -> float:
    out = subprocess.run([str(binary), scenario, str(count), str(wasm)], check=True,
                         capture_output=True, text=True, env=env()).stdout
    return float(re.search(r"([\d.]+) ns per call", out).group(1))


def env() -> dict[str, str]:
    return {**os.environ, "RUST_LOG": "warn"}


def instructions(binary: Path, wasm: Path, scenario: str, count: int, work: Path,
                 per_instr: bool = False) -> int:
    """Instructions of `count` calls (every thread). `per_instr`: the
    dump also has each instruction's cost, and the compiled components'
    functions are named in /tmp/perf-PID.map (APP_COMPONENT_PERFMAP), for
    `self_costs`."""
    out = work / f"callgrind.{scenario}.{count}.out"
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                    f"--dump-instr={'yes' if per_instr else 'no'}",
                    str(binary), scenario, str(count), str(wasm)],
                   check=True, capture_output=True,
                   env={**env(), **({"APP_COMPONENT_PERFMAP": "1"} if per_instr else {})})
    for line in out.read_text().splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


def self_costs(dump: Path) -> dict[str, int]:
    """Instructions by function (self cost), from a `per_instr` dump: the
    components' compiled code by wasm function (prefixed `wasm:`), through
    the perf map wasmtime wrote; the rest by callgrind's function name."""
    text = dump.read_text()
    pid = re.search(r"^pid: (\d+)", text, re.M).group(1)
    perf_map = Path(f"/tmp/perf-{pid}.map")
    ranges = []
    if perf_map.exists():
        for line in perf_map.read_text().splitlines():
            start, size, name = line.split(" ", 2)
            ranges.append((int(start, 16), int(size, 16), name))
        perf_map.unlink()
    ranges.sort()
    starts = [r[0] for r in ranges]
    costs: dict[str, int] = {}
    names: dict[str, str] = {}
    fn = "?"
    width = 1  # position columns: the instruction's address first
    last = [0]
    after_call = False
    for line in text.splitlines():
        first = line[:1]
        if first and (first.isdigit() or first in "+-*"):
            words = line.split()
            for i, pos in enumerate(words[:width]):
                if pos.startswith("0x"):
                    last[i] = int(pos, 16)
                elif pos[0] in "+-":
                    last[i] += int(pos)
                elif pos != "*":
                    last[i] = int(pos)
            if after_call:  # a call's inclusive cost, not this function's own
                after_call = False
                continue
            at = bisect.bisect_right(starts, last[0]) - 1
            inside = at >= 0 and last[0] < ranges[at][0] + ranges[at][1]
            name = "wasm: " + ranges[at][2] if inside else fn
            cost = int(words[width]) if len(words) > width else 0
            costs[name] = costs.get(name, 0) + cost
        elif line.startswith("positions:"):
            width = len(line.split()) - 1
            last = [0] * width
        elif line.startswith("calls="):
            after_call = True
        elif line.startswith(("fn=", "cfn=")):
            m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
            if m.group(2) is not None:
                names[m.group(1)] = m.group(2)
            if line.startswith("fn="):
                fn = names.get(m.group(1), m.group(1))
    return costs


def top(work: Path, scenario: str, kind: str, n: int) -> list[str]:
    """The costliest functions (self) per call: the high run less the low
    one, so that the loading cancels out."""
    low, high = COUNT_LOW[kind], COUNT_HIGH[kind]
    a, b = (self_costs(work / f"callgrind.{scenario}.{c}.out") for c in (low, high))
    rows = sorted(((b.get(f, 0) - a.get(f, 0)) / (high - low), f) for f in set(a) | set(b))
    guest = sum(cost for cost, name in rows if name.startswith("wasm: "))
    return [f"{guest:10,.0f}  (the components' compiled code, all of it)"] + \
        [f"{cost:10,.0f}  {name[:150]}" for cost, name in reversed(rows[-n:])]


def measure(quick: bool, top_n: int = 0) -> dict:
    wasm, binary = build()
    result: dict = {"wall_ns": {}, "instructions": {}, "target_ns": TARGET_NS}
    with tempfile.TemporaryDirectory(prefix="bench-call-") as tmp:
        work = Path(tmp)
        if not quick:
            # Under valgrind the CPU's features differ, so does the engine's
            # compatibility hash: the component is compiled (and cached)
            # again, once, here rather than in a measured run.
            log("component call: compiling the component under valgrind once")
            instructions(binary, wasm, "component-0", 1, work)
        for scenario in SCENARIOS:
            kind = scenario.split("-")[0]
            count = COUNT[kind] // (20 if quick else 1)
            log(f"component call: {scenario}, {count} calls")
            result["wall_ns"][scenario] = wall(binary, wasm, scenario, count)
            if quick:
                continue
            low, high = COUNT_LOW[kind], COUNT_HIGH[kind]
            per_instr = bool(top_n) and scenario == "component-1"
            counts = [instructions(binary, wasm, scenario, c, work, per_instr)
                      for c in (low, high)]
            result["instructions"][scenario] = (counts[1] - counts[0]) / (high - low)
        if top_n and not quick:
            result["top_component_1"] = top(work, "component-1", "component", top_n)
    result["build"] = "debug" if load.DEBUG else "release"
    return result


def markdown(r: dict) -> str:
    lines = [f"| one hook call ({r['build']} build) | wall ns/call (a hint) | instructions/call |",
             "|---|---:|---:|"]
    for scenario in SCENARIOS:
        instr = r["instructions"].get(scenario)
        lines.append(f"| {scenario} | {r['wall_ns'][scenario]:,.0f} | "
                     f"{f'{instr:,.0f}' if instr is not None else 'not measured'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="wall time only, fewer calls")
    parser.add_argument("--debug", action="store_true", help="the debug build (checks the harness)")
    parser.add_argument("--top", type=int, default=0)
    args = parser.parse_args()
    load.select_build(args.debug)
    os.chdir(ROOT)
    result = measure(args.quick, args.top)
    out = load.results_dir(args.quick) / "component_call.json"
    out.write_text(json.dumps(result, indent=1))
    print(markdown(result))
    for line in result.get("top_component_1", []):
        print(line)


if __name__ == "__main__":
    main()
