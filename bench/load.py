"""The app under load, with wrk on loopback: HTTP routes against a bare
hyper handler, writes with hooks (SQLite and PostgreSQL, every acknowledged
write counted in the database afterwards), the hook-count growth curve
through the whole app, and resident memory.

Imported by bench/run.py; every `measure_*` returns plain data (JSON-ready).
The binaries are the release builds of the workspace (`build()`): the real
`app`, and `bench-app` (the real app with the plugins of bench/app-bench
linked in, and a bare hyper server on the same runtime). `select_build(debug=True)`
switches every script to the debug build `cargo test` has already made:
the numbers mean nothing then, but the harness runs end to end in a
fraction of the time (CI does that).
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TOKEN = "bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# How the app builds a component (app/src/plugins/build.rs, PROFILE and
# PROFILE_CONFIG; a test there checks that this says the same), and where
# cargo writes it: target/wasm32-wasip2/<COMPONENT_PROFILE>/.
COMPONENT_PROFILE = "component"
COMPONENT_ARGS = ["--profile", COMPONENT_PROFILE] + [arg for value in [
    'profile.component.inherits="release"',
    'profile.component.lto=true',
    'profile.component.codegen-units=1',
] for arg in ("--config", value)]

# The build the scripts run: release unless select_build(debug=True).
DEBUG = False
BUILD = ROOT / "target" / "release"
APP = BUILD / "app"
BENCH_APP = BUILD / "examples" / "bench-app"


def select_build(debug: bool) -> None:
    """Run the debug build (target/debug) instead of the release one."""
    global DEBUG, BUILD, APP, BENCH_APP
    DEBUG = debug
    BUILD = ROOT / "target" / ("debug" if debug else "release")
    APP = BUILD / "app"
    BENCH_APP = BUILD / "examples" / "bench-app"


def results_dir(quick: bool) -> Path:
    """Where a run writes its results: bench/results/ (committed, what
    BENCHMARKS.md shows) for a full run of the release build, and
    bench/results/quick/ (ignored by git) for a --quick or --debug run, so
    that checking the harness never replaces the measured numbers."""
    folder = RESULTS / "quick" if quick or DEBUG else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build() -> None:
    """The same build `cargo test` makes (lib, bins, examples): in release,
    or with select_build(debug=True) the debug one, which after `cargo test`
    is already there."""
    cmd = ["cargo", "build", "--lib", "--bins", "--examples"] + ([] if DEBUG else ["--release"])
    log("+ " + " ".join(cmd))
    subprocess.run(cmd, cwd=ROOT, check=True)


def ensure_wrk() -> str:
    """wrk, from Debian's packages if it is missing (on a fresh machine the
    package lists are fetched first)."""
    found = shutil.which("wrk")
    if found:
        return found
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        log("+ " + " ".join(cmd))
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return shutil.which("wrk") or sys.exit("wrk is not installed and could not be")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- databases ---------------------------------------------------------------

def postgres_url() -> str | None:
    """The PostgreSQL server to use, or None (then those rows are skipped)."""
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    ready = subprocess.run(
        ["pg_isready", "-h", "127.0.0.1", "-p", "5432"], capture_output=True
    ) if shutil.which("pg_isready") else None
    return "postgres://postgres@127.0.0.1:5432/test" if ready and ready.returncode == 0 else None


class Database:
    """A fresh database for one run: a SQLite file or a PostgreSQL database."""

    def __init__(self, kind: str, data_dir: Path, server: str | None = None):
        self.kind = kind
        if kind == "sqlite":
            self.path = data_dir / "app.db"
            self.url = f"sqlite://{self.path}?mode=rwc"
        else:
            assert server, "PostgreSQL needs a server URL"
            self.server = server
            self.name = f"bench_{os.getpid()}_{int(time.time() * 1000) % 10**9}"
            self.psql(f"CREATE DATABASE {self.name}")
            self.url = server.rsplit("/", 1)[0] + "/" + self.name

    def psql(self, sql: str, url: str | None = None) -> str:
        out = subprocess.run(
            ["psql", "-At", "-v", "ON_ERROR_STOP=1", url or self.server, "-c", sql],
            capture_output=True, text=True, check=True,
        )
        return out.stdout.strip()

    def scalar(self, sql: str) -> int:
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as db:
                return int(db.execute(sql).fetchone()[0])
        return int(self.psql(sql, self.url))

    def drop(self) -> None:
        if self.kind == "postgres":
            self.psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


# --- the app process ---------------------------------------------------------

class App:
    """One app process, logging to a file, stopped with SIGTERM.

    `wrapper` runs the binary under another program (valgrind); it has
    `ready_timeout` seconds to answer `/health`. `env` adds to (a value of
    None removes from) the environment, where every inherited `APP_*` and
    `DATABASE_URL` is replaced by the App's own. With `follow_log`, the log
    is read from a pipe instead (`output`, a list of lines): the App waits
    for the `listening on` line without polling, and `ready_ms` is the time
    from the spawn to the first 200 on `/health` (bench/startup.py's
    measure; `spawned_ns` is the spawn's wall-clock time)."""

    def __init__(self, binary: Path, work: Path, *, database: Database,
                 plugins_dir: Path, env: dict[str, str | None] | None = None,
                 wrapper: list[str] | None = None, ready_timeout: float = 30,
                 cwd: Path | None = None, follow_log: bool = False):
        self.port = free_port()
        self.log_path = work / f"app-{self.port}.log"
        self.output: list[str] = []
        self.drain: threading.Thread | None = None
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith("APP_") and k != "DATABASE_URL"}
        full_env.update(
            APP_LISTEN=f"127.0.0.1:{self.port}",
            APP_DATA_DIR=str(work),
            APP_PLUGINS_DIR=str(plugins_dir),
            APP_ADMIN_TOKEN=TOKEN,
            DATABASE_URL=database.url,
        )
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        full_env.setdefault("RUST_LOG", "info")
        cmd = [*(wrapper or []), str(binary)]
        self.spawned_ns = time.time_ns()
        spawned = time.perf_counter()
        if follow_log:
            self.proc = subprocess.Popen(cmd, env=full_env, cwd=cwd, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self.wait_listening(ready_timeout)
        else:
            with open(self.log_path, "wb") as out:
                self.proc = subprocess.Popen(cmd, env=full_env, cwd=cwd, stdout=out, stderr=out)
            self.wait_ready(ready_timeout)
        self.ready_ms = (time.perf_counter() - spawned) * 1000

    def log_tail(self) -> str:
        if self.drain is not None or self.proc.stdout is not None:
            return "".join(self.output[-30:])
        return self.log_path.read_text()[-3000:]

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited:\n{self.log_tail()}")
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"the app did not start:\n{self.log_tail()}")

    def wait_listening(self, timeout: float) -> None:
        """Blocking reads of the log up to its `listening on` line, then one
        `/health`; the rest of the log is read by a thread of its own."""
        watchdog = threading.Timer(timeout, self.proc.kill)
        watchdog.start()
        try:
            for raw in self.proc.stdout:
                self.output.append(raw.decode(errors="replace"))
                if "listening on" in self.output[-1]:
                    break
            else:
                self.proc.wait()
                raise RuntimeError(f"the app exited ({self.proc.returncode}) before listening:"
                                   f"\n{self.log_tail()}")
            status, _ = self.request("GET", "/health")
            if status != 200:
                raise RuntimeError(f"GET /health: {status}")
        finally:
            watchdog.cancel()

        def rest() -> None:
            for raw in self.proc.stdout:
                self.output.append(raw.decode(errors="replace"))

        self.drain = threading.Thread(target=rest, daemon=True)
        self.drain.start()

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers=headers)
        response = conn.getresponse()
        raw = response.read()
        conn.close()
        return response.status, json.loads(raw) if raw else None

    def check_loaded(self, names: list[str]) -> None:
        """Fails unless every plugin in `names` was loaded."""
        status, report = self.request("GET", "/api/admin/plugins")
        loaded = {p["name"] for p in report["plugins"] if p["status"] == "loaded"}
        missing = sorted(set(names) - loaded)
        if status != 200 or missing:
            raise RuntimeError(f"plugins not loaded: {missing}: {report}")

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def cpu_seconds(self) -> float:
        return _proc_cpu(Path(f"/proc/{self.proc.pid}/stat").read_text())

    def stop(self, timeout: float = 40) -> bool:
        """SIGTERM, then SIGKILL after `timeout` s; whether it stopped in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
            stopped = True
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            stopped = False
        if self.drain is not None:
            self.drain.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return stopped


def _proc_cpu(stat: str, children: bool = False) -> float:
    """utime + stime of one /proc/<pid>/stat line, in seconds; with
    `children`, the time of the children it has reaped instead."""
    fields = stat.rsplit(")", 1)[1].split()
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / CLOCK_TICKS


def postgres_cpu_seconds() -> float:
    """CPU seconds of the local PostgreSQL server so far: every `postgres`
    process alive now, plus what the ones that exited cost (the postmaster's
    reaped children). 0 where no server runs on this machine."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        stat = _postgres_stat(entry.name) if entry.name.isdigit() else None
        if stat is None:
            continue
        total += _proc_cpu(stat)
        if _postgres_stat(stat.rsplit(")", 1)[1].split()[1]) is None:
            total += _proc_cpu(stat, children=True)  # the postmaster
    return total


def _postgres_stat(pid: str) -> str | None:
    """/proc/<pid>/stat if that process is a `postgres` one."""
    try:
        stat = (Path("/proc") / pid / "stat").read_text()
    except OSError:
        return None  # gone meanwhile
    return stat if stat.split(" (", 1)[1].startswith("postgres)") else None


def idle_cpu_seconds() -> float:
    """Idle time of all the machine's cores so far (/proc/stat's idle and
    iowait), in seconds."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return (int(fields[4]) + int(fields[5])) / CLOCK_TICKS


class CpuShares:
    """Who used the machine's CPU between `__init__` and `stop()`: the apps,
    PostgreSQL, wrk (this process's reaped children: every wrk has ended by
    `stop()`) and this process (the receiver's threads, mostly), each in
    cores (CPU seconds per second); what stayed idle; and the rest, every
    other process (and the kernel's work no process is charged for, and on
    a virtual machine the time the host took: steal)."""

    def __init__(self, apps: list["App"], postgres: bool = False):
        self.apps, self.postgres = apps, postgres
        self.started = time.monotonic()
        self.before = self._read()

    def _read(self) -> dict[str, float]:
        me = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {"app": sum(a.cpu_seconds() for a in self.apps),
                "postgres": postgres_cpu_seconds(),
                "wrk": children.ru_utime + children.ru_stime,
                "receiver": me.ru_utime + me.ru_stime,
                "idle": idle_cpu_seconds()}

    def stop(self) -> dict[str, float]:
        after = self._read()
        if self.postgres and after["postgres"] == self.before["postgres"]:
            log("CpuShares: no CPU time of a local `postgres` process: a server "
                "elsewhere (another machine or PID namespace) is counted under \"other\"")
        seconds = time.monotonic() - self.started
        cores = {k: (after[k] - self.before[k]) / seconds for k in after}
        cores["other"] = (os.cpu_count() or 1) - sum(cores.values())
        return cores


class Receiver:
    """A webhook receiver on 127.0.0.1 answering 200, recording when each
    event arrived (by its Idempotency-Key) and its entity's `created_at`.
    `hold()` makes requests wait until `release()`: a backlog builds up."""

    def __init__(self):
        import http.server
        self.arrivals: list[tuple[str, float, str]] = []  # (key, received, created_at)
        self.lock = threading.Lock()
        self.open = threading.Event()
        self.open.set()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.open.wait(120)
                now = time.time()
                try:
                    created = json.loads(body)["data"].get("created_at", "")
                except (ValueError, KeyError, AttributeError):
                    created = ""
                with receiver.lock:
                    receiver.arrivals.append((self.headers.get("Idempotency-Key", ""), now, created))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def hold(self) -> None:
        self.open.clear()

    def release(self) -> None:
        self.open.set()

    def count(self) -> int:
        with self.lock:
            return len(self.arrivals)

    def stop(self) -> None:
        self.release()
        self.server.shutdown()


def webhooks_config(work: Path, receiver: Receiver | None, deliveries: str = "",
                    lease_ms: int = 120_000) -> Path:
    """A config file with the same `[deliveries]` settings for every run,
    pointing the webhooks plugin at `receiver`; with None, for a run
    without that plugin, no `[plugins.webhooks]` table (the app refuses to
    start with settings for a plugin it did not load). A claimed delivery
    is leased for `lease_ms`; an attempt may take three quarters of that
    (the worker starts none that could outlive its claim), the plugin's
    request half."""
    path = work / "webhooks.toml"
    plugin = (f'[plugins.webhooks]\nurl = "{receiver.url}"\nsecret = "bench"\n'
              f"timeout_ms = {lease_ms // 2}\n\n") if receiver else ""
    path.write_text(f"{plugin}[deliveries]\ntimeout_ms = {lease_ms * 3 // 4}\n"
                    f"lease_ms = {lease_ms}\n{deliveries}\n")
    return path


SHIPPED = sorted(p.name.removeprefix("app_plugin_") for p in (ROOT / "plugins").glob("app_plugin_*"))


def shipped_plugins(binary: Path, work: Path) -> Path:
    """A plugin folder from which `binary` loads every shipped plugin. The
    app finds a plugin crate's library next to itself; bench-app, an
    example, lives one folder below, so it gets the built libraries as
    prebuilt plugins instead (the same files)."""
    if binary == APP:
        return ROOT / "plugins"
    folder = work / "plugins"
    folder.mkdir()
    for name in SHIPPED:
        shutil.copy(BUILD / f"libapp_plugin_{name}.so", folder)
    return folder


def wrk(app: App, path: str, *, duration: float, connections: int,
        script: str = "get.lua", args: tuple[str, ...] = (), port: int | None = None) -> dict:
    """One wrk run against `app` (on `port`, default its own): wrk's summary,
    the server's CPU time per request, and the peak resident memory sampled
    every 50 ms."""
    peak = [app.rss_kb()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], app.rss_kb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu_before = app.cpu_seconds()
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
           "-s", f"bench/wrk/{script}", f"http://127.0.0.1:{port or app.port}{path}", "--", *args]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    cpu = app.cpu_seconds() - cpu_before
    stop.set()
    sampler.join()
    line = next((l for l in out.splitlines() if l.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    result = json.loads(line.removeprefix("WRK_JSON "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["server_cpu_us_per_request"] = cpu * 1e6 / max(result["requests"], 1)
    result["peak_rss_kb"] = peak[0]
    return result


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


# --- 3. HTTP routes ----------------------------------------------------------

# (target, port: "app" or "bare", path). Same work in each pair: `json`
# answers {"status":"ok"} from memory; `db` runs SELECT 1 first.
HTTP_TARGETS = [
    ("bare hyper /json", "bare", "/json"),
    ("plugin route /plugins/bench/json", "app", "/plugins/bench/json"),
    ("bare hyper /db", "bare", "/db"),
    ("plugin route /plugins/bench/db", "app", "/plugins/bench/db"),
    ("core route /health", "app", "/health"),
]


def measure_http(quick: bool) -> dict:
    """Plugin route, core route and bare hyper, in the same process, under the
    same wrk load, interleaved over rounds; with the app's default logging
    (one access-log line per request) and with RUST_LOG=warn."""
    duration, rounds = (2, 1) if quick else (5, 3)
    connections = 32
    configs = {}
    for label, rust_log in (("default logging (info)", "info"), ("RUST_LOG=warn", "warn")):
        with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
            work = Path(tmp)
            db = Database("sqlite", work)
            bare_port = free_port()
            # The shipped webhooks plugin needs somewhere to post (GETs post nothing).
            receiver = Receiver()
            app = App(BENCH_APP, work, database=db, plugins_dir=shipped_plugins(BENCH_APP, work),
                      env={"BENCH_BARE_LISTEN": f"127.0.0.1:{bare_port}", "RUST_LOG": rust_log,
                           "APP_CONFIG": str(webhooks_config(work, receiver))})
            try:
                app.check_loaded(SHIPPED + ["bench"])
                runs: dict[str, list[dict]] = {t: [] for t, _, _ in HTTP_TARGETS}
                for round_ in range(rounds):
                    for target, where, path in HTTP_TARGETS:
                        log(f"http [{label}] round {round_ + 1}/{rounds}: {target}")
                        port = app.port if where == "app" else bare_port
                        runs[target].append(wrk(app, path, duration=duration,
                                                connections=connections, port=port))
            finally:
                app.stop()
                receiver.stop()
        summary = {
            t: {
                "rps": median_of(r, "rps"),
                "p50_us": median_of(r, "p50_us"),
                "p99_us": median_of(r, "p99_us"),
                "server_cpu_us_per_request": median_of(r, "server_cpu_us_per_request"),
                "errors": sum(x["status_errors"] + x["socket_errors"] for x in r),
                "runs": r,
            }
            for t, r in runs.items()
        }
        configs[label] = summary
    return {"connections": connections, "duration_s": duration, "rounds": rounds,
            "configs": configs}


# --- 2. growth through the app -----------------------------------------------

GROWTH_SIZES = [0, 1, 10, 50, 100]


def measure_app_growth(quick: bool) -> dict:
    """POST /api/users through bench-app with N plugins implementing
    on_user_created, one connection (so the latency is the request's own),
    SQLite on tmpfs (so the disk's flush time does not drown the hooks)."""
    duration, rounds = (1, 1) if quick else (5, 3)
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    runs: dict[int, list[dict]] = {n: [] for n in GROWTH_SIZES}
    for round_ in range(rounds):
        for n in GROWTH_SIZES:
            log(f"growth through the app, round {round_ + 1}/{rounds}: {n} listeners")
            with tempfile.TemporaryDirectory(prefix="bench-growth-", dir=shm) as tmp, \
                    tempfile.TemporaryDirectory(prefix="bench-noplugins-") as empty:
                work = Path(tmp)
                db = Database("sqlite", work)
                app = App(BENCH_APP, work, database=db, plugins_dir=Path(empty),
                          env={"BENCH_LISTENERS": str(n), "RUST_LOG": "warn"})
                try:
                    r = wrk(app, "/api/users", duration=duration, connections=1,
                            script="writes.lua", args=("users", TOKEN, f"g{round_}n{n}"))
                finally:
                    app.stop()
                if r["created"] != r["requests"]:
                    raise RuntimeError(f"growth run with {n} listeners: {r}")
                runs[n].append(r)
    points = [{"impls": n, "mean_us": median_of(r, "mean_us"), "p50_us": median_of(r, "p50_us"),
               "p99_us": median_of(r, "p99_us"), "rps": median_of(r, "rps"), "runs": r}
              for n, r in runs.items()]
    return {"duration_s": duration, "rounds": rounds, "tmpfs": shm is not None,
            "points": points, "fit": linear_fit([(p["impls"], p["mean_us"]) for p in points])}


def linear_fit(points: list[tuple[float, float]]) -> dict:
    """Least squares y = a + b*x, and how far each point departs from it."""
    xs, ys = zip(*points)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    b = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)
    a = my - b * mx
    residuals = [y - (a + b * x) for x, y in points]
    return {"intercept": a, "slope": b,
            "max_departure_pct": max(abs(r) / (a + b * x) * 100 for (x, _), r in zip(points, residuals)),
            "residuals": residuals}


# --- 4 and 6. writes with hooks, and memory ----------------------------------

SPACES = 50


def measure_writes(quick: bool) -> dict:
    """POST /api/users, then PUT members, against the real app with no
    plugins and with every shipped plugin, on SQLite and on PostgreSQL. The
    app is stopped before the rows are counted: every acknowledged write
    must be there, and nothing else but requests cut off in flight."""
    duration = 2 if quick else 10
    connections = 8
    pg = postgres_url()
    results = []
    for kind in ("sqlite", "postgres"):
        if kind == "postgres" and pg is None:
            log("writes on PostgreSQL skipped: no server (set BENCH_DATABASE_URL)")
            results.append({"database": kind, "skipped": "no PostgreSQL server"})
            continue
        for plugins in ("none", "shipped"):
            log(f"writes: {kind}, plugins: {plugins}")
            results.append(writes_run(kind, plugins, pg, duration, connections))
    return {"duration_s": duration, "connections": connections, "runs": results}


def writes_run(kind: str, plugins: str, pg: str | None, duration: float, connections: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-writes-") as tmp, \
            tempfile.TemporaryDirectory(prefix="bench-noplugins-") as empty:
        work = Path(tmp)
        db = Database(kind, work, pg)
        try:
            plugins_dir = shipped_plugins(APP, work) if plugins == "shipped" else Path(empty)
            # The shipped webhooks plugin needs somewhere to post.
            receiver = Receiver()
            env = {"APP_CONFIG": str(webhooks_config(
                work, receiver if plugins == "shipped" else None))}
            app = App(APP, work, database=db, plugins_dir=plugins_dir, env=env)
            try:
                app.check_loaded(SHIPPED if plugins == "shipped" else [])
                time.sleep(1)  # let startup's allocations settle before the idle reading
                idle_rss = app.rss_kb()
                users = wrk(app, "/api/users", duration=duration, connections=connections,
                            script="writes.lua", args=("users", TOKEN, f"{kind}{plugins}"))
                first_space = None
                for i in range(SPACES):
                    status, space = app.request(
                        "POST", "/api/spaces", {"name": f"bench {i}", "access": "confidential"})
                    assert status == 201, (status, space)
                    first_space = first_space or space["id"]
                user_ids = db.scalar("SELECT min(id) FROM users"), db.scalar("SELECT count(*) FROM users")
                members_before = db.scalar("SELECT count(*) FROM memberships")
                members = wrk(app, "/api/spaces", duration=duration, connections=connections,
                              script="writes.lua",
                              args=("members", TOKEN, "1", str(first_space), str(SPACES),
                                    str(user_ids[0])))
                loaded_rss = max(users["peak_rss_kb"], members["peak_rss_kb"])
                after_rss = app.rss_kb()
            finally:
                app.stop()
                receiver.stop()
            # Counted with the app stopped: nothing is in flight any more.
            users["rows"] = db.scalar("SELECT count(*) FROM users")
            members["rows"] = db.scalar("SELECT count(*) FROM memberships") - members_before
            for run, pairs in ((users, None), (members, SPACES * user_ids[1])):
                run["lost"] = max(0, run["created"] - run["rows"])
                run["unacknowledged_in_db"] = run["rows"] - run["created"]
                if pairs is not None and run["requests"] > pairs:
                    raise RuntimeError(f"members run wrapped around: {run['requests']} > {pairs}")
            return {"database": kind, "plugins": plugins, "users": users, "members": members,
                    "rss_kb": {"idle": idle_rss, "under_load_peak": loaded_rss,
                               "after_load": after_rss}}
        finally:
            db.drop()
