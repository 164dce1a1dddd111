#!/usr/bin/env python3
"""Instructions per route lookup: the app's router (routerify_ng, behind
`Router::find`) against matchit over the same frozen route table
(bench/app-bench/examples/route-lookup.rs), under callgrind:

    python3 bench/callgrind_lookup.py            # builds the example first
    python3 bench/callgrind_lookup.py --count 20000

Only the lookup function is counted (`--toggle-collect`), building the
tables is not; each count is the function's total over `--count` lookups
divided by the count. Like bench/callgrind_http.py, it does not depend on
the machine's load.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASES = [  # what, method, target
    ("plugin route, one parameter", "GET", "/plugins/bench/json/7"),
    ("core route, two parameters", "PUT", "/api/spaces/3/members/9"),
    ("plugin route, no parameter", "GET", "/plugins/bench/json"),
    ("the same, percent-encoded", "GET", "/plugins/bench/%6Ason"),
    ("no route", "GET", "/nope/7"),
]


def harness() -> Path:
    out = subprocess.run(
        ["cargo", "build", "--release", "-p", "app-bench", "--example", "route-lookup",
         "--message-format=json"],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        message = json.loads(line)
        if message.get("target", {}).get("name") == "route-lookup" and message.get("executable"):
            return Path(message["executable"])
    raise RuntimeError("cargo built no route-lookup example")


def count(binary: Path, matcher: str, method: str, target: str, n: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-lookup-") as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        f"--toggle-collect=*counted_{matcher}*", str(binary), matcher, method,
                        target, str(n)], check=True, capture_output=True)
        for line in out.read_text().splitlines():
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1]) / n
    raise RuntimeError(f"no totals for {matcher} {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--binary", type=Path, help="the harness (default: build it)")
    args = parser.parse_args()
    binary = args.binary or harness()
    print(f"instructions per lookup, {args.count} lookups")
    print("| request | routerify_ng (`Router::find`) | matchit |")
    print("|---|---:|---:|")
    for what, method, target in CASES:
        ours = count(binary, "routerify", method, target, args.count)
        theirs = count(binary, "matchit", method, target, args.count)
        print(f"| {what}: `{method} {target}` | {ours:,.0f} | {theirs:,.0f} |")


if __name__ == "__main__":
    main()
