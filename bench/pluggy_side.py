#!/usr/bin/env python3
"""pluggy's side of the dispatch benchmark (bench/dispatch.py runs it in
bench/.venv, with pluggy 1.7.0 installed from PyPI).

The scenarios are those of bench/hooks-bench/benches/dispatch.rs, by name:

    reference/manual-loop-N   a plain Python loop over N bound methods that
                              keeps the non-None results (N = 1, 10, 100)
    call/0-impls              a hook with no implementation
    call/1-impl, call/10-impls, call/100-impls
                              N plain implementations, each `return arg`
    call/10-impls+5-wrappers  the same ten and five new-style wrappers
                              (`wrapper=True`, body `return (yield)`)
    first/100-impls-hit@50    a firstresult hook over 100 implementations
                              where the 50th one called answers
    register/N-plugins        N fresh one-implementation plugins registered
                              into a manager that has the spec (N = 100,
                              1000, 5000)

Before a scenario is timed it is checked: the hook returns what it should,
and (counted by instrumented twins of the plugins) exactly the expected
number of implementations ran.

    python3 pluggy_side.py --json out.json [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
import timeit

import pluggy

spec = pluggy.HookspecMarker("bench")
impl = pluggy.HookimplMarker("bench")


class Hooks:
    @spec
    def compute(self, arg):
        """Every implementation answers; the caller gets all the answers."""

    @spec(firstresult=True)
    def first(self, arg):
        """The first implementation to answer (not None) ends the call."""


class Echo:
    @impl
    def compute(self, arg):
        return arg


class PassThrough:
    @impl(wrapper=True)
    def compute(self, arg):
        return (yield)


class Decline:
    @impl
    def first(self, arg):
        return None


class Answer:
    @impl
    def first(self, arg):
        return arg


def manager(*plugins) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("bench")
    pm.add_hookspecs(Hooks)
    for i, plugin in enumerate(plugins):
        pm.register(plugin, name=f"p{i}")
    return pm


def firstresult_plugins(total: int, hit: int, decline=Decline, answer=Answer) -> list:
    """`total` plugins of which the `hit`-th to be called answers. pluggy
    calls the plugin registered last first, so that is registration index
    total - hit."""
    return [answer() if i == total - hit else decline() for i in range(total)]


# --- checks -----------------------------------------------------------------

def check_fan_out(pm: pluggy.PluginManager, impls: int, wrappers: int = 0) -> None:
    assert pm.hook.compute(arg=7) == [7] * impls
    assert len(pm.hook.compute.get_hookimpls()) == impls + wrappers
    # Per-implementation counting: every plain implementation ran once.
    calls: list[int] = []

    class Counted:
        def __init__(self, i):
            self.i = i

        @impl
        def compute(self, arg):
            calls.append(self.i)
            return arg

    counted = manager(*[Counted(i) for i in range(impls)], *[PassThrough() for _ in range(wrappers)])
    assert counted.hook.compute(arg=7) == [7] * impls
    assert sorted(calls) == list(range(impls))


def check_firstresult(total: int, hit: int) -> None:
    called: list[str] = []

    class CountedDecline:
        @impl
        def first(self, arg):
            called.append("declined")
            return None

    class CountedAnswer:
        @impl
        def first(self, arg):
            called.append("answered")
            return arg

    pm = manager(*firstresult_plugins(total, hit, CountedDecline, CountedAnswer))
    assert pm.hook.first(arg=7) == 7
    assert called == ["declined"] * (hit - 1) + ["answered"], called


# --- timing -----------------------------------------------------------------

def per_call_ns(fn, samples: int, sample_s: float) -> tuple[float, float, int]:
    """(min, median) ns per call of `fn`, and the loop count per sample, which
    is chosen so that one sample lasts about `sample_s`. The minimum of many
    short samples is what a shared machine lets through undisturbed."""
    timer = timeit.Timer(fn)
    loops, elapsed = timer.autorange()
    loops = max(1, int(loops * sample_s / max(elapsed, 1e-9)))
    times = timer.repeat(repeat=samples, number=loops)  # gc is off while timing
    ns = [t / loops * 1e9 for t in times]
    return min(ns), statistics.median(ns), loops


def calls(samples: int, sample_s: float) -> list[dict]:
    rows = []

    def measure(scenario: str, fn, impls_run: int) -> None:
        lo, mid, loops = per_call_ns(fn, samples, sample_s)
        rows.append({
            "scenario": scenario,
            "impls_executed": impls_run,
            "ns_per_call_min": round(lo, 1),
            "ns_per_call_median": round(mid, 1),
            "ns_per_impl_min": round(lo / impls_run, 1) if impls_run else None,
            "loops": loops,
            "repeat": samples,
        })
        print(f"{scenario:32} {lo:12.1f} ns", file=sys.stderr, flush=True)

    for n in (1, 10, 100):
        methods = [Echo().compute for _ in range(n)]

        def loop(methods=methods):
            results = []
            for method in methods:
                value = method(7)
                if value is not None:
                    results.append(value)
            return results

        assert loop() == [7] * n
        measure(f"reference/manual-loop-{n}", loop, n)

    for n in (0, 1, 10, 100):
        pm = manager(*[Echo() for _ in range(n)])
        check_fan_out(pm, n)
        hook = pm.hook.compute
        name = {0: "call/0-impls", 1: "call/1-impl"}.get(n, f"call/{n}-impls")
        measure(name, lambda hook=hook: hook(arg=7), n)

    pm = manager(*[Echo() for _ in range(10)], *[PassThrough() for _ in range(5)])
    check_fan_out(pm, 10, wrappers=5)
    hook = pm.hook.compute
    measure("call/10-impls+5-wrappers", lambda: hook(arg=7), 15)

    check_firstresult(100, 50)
    pm = manager(*firstresult_plugins(100, 50))
    hook_first = pm.hook.first
    assert hook_first(arg=7) == 7
    measure("first/100-impls-hit@50", lambda: hook_first(arg=7), 50)
    return rows


def registrations(sizes: tuple[int, ...], rounds: int) -> list[dict]:
    """Time of `register()` for N fresh plugins into a fresh manager with the
    spec, gc off; min and median over the rounds (a third of them at 5000)."""
    rows = []
    for n in sizes:
        times = []
        for _ in range(rounds if n <= 1000 else max(3, rounds // 3)):
            pm = manager()
            plugins = [(Echo(), f"p{i}") for i in range(n)]
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter_ns()
                for plugin, name in plugins:
                    pm.register(plugin, name=name)
                times.append(time.perf_counter_ns() - start)
            finally:
                gc.enable()
            assert len(pm.hook.compute.get_hookimpls()) == n
        lo, mid = min(times), statistics.median(times)
        rows.append({
            "scenario": f"register/{n}-plugins",
            "plugins": n,
            "total_ms_min": round(lo / 1e6, 3),
            "total_ms_median": round(mid / 1e6, 3),
            "us_per_plugin_min": round(lo / n / 1e3, 3),
            "us_per_plugin_median": round(mid / n / 1e3, 3),
            "repeat": len(times),
        })
        print(f"register/{n}-plugins {lo / 1e6:16.3f} ms", file=sys.stderr, flush=True)
    return rows


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True, help="where to write the results")
    ap.add_argument("--quick", action="store_true", help="few short samples: checks the harness")
    args = ap.parse_args()
    samples, sample_s, rounds = (5, 0.005, 3) if args.quick else (31, 0.02, 15)
    env = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "pluggy": pluggy.__version__,
        "platform": platform.platform(),
        "loadavg_before": loadavg(),
    }
    result = {"env": env, "calls": calls(samples, sample_s),
              "register": registrations((100, 1000, 5000), rounds)}
    env["loadavg_after"] = loadavg()
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
