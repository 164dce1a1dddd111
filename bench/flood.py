"""Resident memory under a flood of hostile clients: N connections, no
credential, each announcing a ~1 MB body to an unknown route and sending
most of it but never the last byte. The server answers 404 before reading
any body, so memory must stay bounded whatever the clients do.

`python3 bench/flood.py [--quick] [--debug]` prints JSON; `measure_flood`
returns the same data.
"""

from __future__ import annotations

import socket
import tempfile
import time
from pathlib import Path

import load

CLIENTS = 300
BODY = 1_000_000


def hostile(port: int) -> socket.socket | None:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setblocking(False)
    try:
        s.send(f"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: {BODY}\r\n\r\n".encode())
        chunk = b"x" * 65536
        sent = 0
        while sent < BODY - 1:
            sent += s.send(chunk[: BODY - 1 - sent])
    except (BlockingIOError, OSError):
        pass  # the server stopped reading: exactly what it should do
    return s


def measure_flood(quick: bool, binary: Path | None = None) -> dict:
    clients = 60 if quick else CLIENTS
    rounds = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp:
        work = Path(tmp)
        db = load.Database("sqlite", work)
        app = load.App(binary or load.APP, work, database=db, plugins_dir=load.ROOT / "plugins")
        try:
            idle_kb = app.rss_kb()
            peaks = []
            for round_ in range(rounds):
                load.log(f"flood round {round_ + 1}/{rounds}: {clients} clients")
                held = [hostile(app.port) for _ in range(clients)]
                time.sleep(1)  # let the server do whatever it will with them
                peaks.append(app.rss_kb())
                status, _ = app.request("GET", "/health")
                assert status == 200, "the server stopped serving under the flood"
                for s in held:
                    if s:
                        s.close()
            time.sleep(1)
            after_kb = app.rss_kb()
        finally:
            app.stop()
    return {
        "clients": clients,
        "body_bytes": BODY,
        "rounds": rounds,
        "idle_rss_mib": idle_kb / 1024,
        "peak_rss_mib": max(peaks) / 1024,
        "growth_mib": (max(peaks) - idle_kb) / 1024,
        "after_rss_mib": after_kb / 1024,
    }


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of 60 clients")
    parser.add_argument("--debug", action="store_true",
                        help="the debug build (after `cargo test`: already built)")
    args = parser.parse_args()
    load.select_build(args.debug)
    load.build()
    print(json.dumps(measure_flood(args.quick), indent=2))
