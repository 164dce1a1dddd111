"""Draws bench/results/report.{svg,png} from results.json (run by run.py in
bench/.venv, which has matplotlib): the ratios against each target, and the
growth curve."""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

results = json.load(open(sys.argv[1]))
out = sys.argv[2]
fig, axes = plt.subplots(2, 3, figsize=(18, 10))
fig.suptitle(f"hooks-core and the app, measured {results['env']['date']} "
             f"on {results['env']['cpu']} ({results['env']['cores']} cores)")


def target_line(ax, y, label):
    ax.axhline(y, color="red", linestyle="--", linewidth=1)
    ax.text(ax.get_xlim()[1], y, f" {label}", color="red", va="bottom", ha="right", fontsize=8)


def bars(ax, labels, series, ylabel, title, log=False):
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        ax.bar(xs, values, width, label=name)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)


if "dispatch" in results:
    d = results["dispatch"]
    py = {r["scenario"]: r["ns_per_call_min"] for r in d["pluggy"]["calls"]}
    ours = d["hooks_core"]
    names = [n for n in py if not n.startswith("reference/") and f"sync/{n}" in ours]
    ax = axes[0][0]
    bars(ax, names, {kind: [py[n] / ours[f"{kind}/{n}"]["ns_min"] for n in names]
                     for kind in ("sync", "async")},
         "times faster than pluggy", "Dispatch: pluggy time / hooks-core time", log=True)
    target_line(ax, 100, "target sync 100x")
    target_line(ax, 20, "target async 20x")
    ax = axes[0][1]
    sizes = [1, 10, 100]
    labels = [f"call/{n}-impl{'s' if n > 1 else ''}" for n in sizes]
    bars(ax, labels, {kind: [ours[f"{kind}/{lab}"]["ns_min"]
                             / ours[f"{kind}/reference/manual-loop-{n}"]["ns_min"]
                             for lab, n in zip(labels, sizes)]
                      for kind in ("sync", "async")},
         "hooks-core time / hand loop time", "Dispatch: cost over a hand-written loop")
    target_line(ax, 2, "target 2x")

if "growth" in results:
    g = results["growth"]
    ax = axes[0][2]
    ns = [p["impls"] for p in g["engine"]["points"]]
    ax.plot(ns, [p["ns"] / 1000 for p in g["engine"]["points"]], "o-", label="engine: hook call (us)")
    base = g["app"]["points"][0]["mean_us"]
    ax.plot(ns, [p["mean_us"] - base for p in g["app"]["points"]], "s-",
            label=f"app: POST /api/users minus its 0-impl time ({base:.0f} us)")
    ax.set_xlabel("implementations of on_user_created")
    ax.set_ylabel("us")
    ax.set_title("Growth with the number of implementations", fontsize=10)
    ax.legend(fontsize=8)

if "http" in results:
    ax = axes[1][0]
    configs = results["http"]["configs"]
    pairs = [("json", "plugin route /plugins/bench/json", "bare hyper /json"),
             ("db", "plugin route /plugins/bench/db", "bare hyper /db"),
             ("db", "core route /health", "bare hyper /db")]
    labels = [f"{t.split(' /')[0]} ({w})" for w, t, _ in pairs]
    bars(ax, labels, {label: [100 * c[t]["rps"] / c[b]["rps"] for _, t, b in pairs]
                      for label, c in configs.items()},
         "% of bare hyper's requests/s", "HTTP: route throughput vs bare hyper, same work")
    target_line(ax, 90, "target 90%")

if "writes" in results:
    ax = axes[1][1]
    runs = [r for r in results["writes"]["runs"] if "skipped" not in r]
    labels = [f"{r['database']}\n{r['plugins']} plugins" for r in runs]
    bars(ax, labels, {"POST /api/users": [r["users"]["rps"] for r in runs],
                      "PUT members": [r["members"]["rps"] for r in runs]},
         "acknowledged writes/s", "Writes with hooks")

if "startup" in results:
    ax = axes[1][2]
    cases = results["startup"]["cases"]
    bars(ax, list(cases), {"median": [c["median"] for c in cases.values()],
                           "max": [c["max"] for c in cases.values()]},
         "ms, process start to first 200", "Startup")
    target_line(ax, 200, "target 200 ms (50 plugins)")

fig.tight_layout()
fig.savefig(out + ".svg")
fig.savefig(out + ".png", dpi=80)
