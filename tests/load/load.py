#!/usr/bin/env python3
"""Load and soak test of the dspm-audit server, on loopback only.

Starts a private moto (seeded by tests/moto/seed.py) and the release server
auditing it, then, all at once for DURATION seconds:
  - wrk hammers GET /health with 64 connections,
  - two clients run audits back to back (so the audit limit is exercised),
  - 20 slow clients hold connections by sending request heads byte by byte.
Afterwards it runs 50 audits in a row and compares resident memory.

It prints the figures as JSON (for the README) and fails only on behaviour:
a 5xx or socket error on /health, an audit answer other than 200 or 429,
or memory that keeps growing across audits. No timing is asserted.
Everything it starts is stopped by PID, also on failure.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_PY = ROOT / ".venv" / "bin" / "python"
MOTO = ROOT / ".venv" / "bin" / "moto_server"
SEED = ROOT / "tests" / "moto" / "seed.py"
BINARY = ROOT / "target" / "release" / "dspm-audit"
DURATION = int(os.environ.get("LOAD_SECONDS", "10"))
SLOW_CLIENTS = 20
SOAK_AUDITS = 50
# Growth allowed between the 10th and the 50th audit: allocator noise, not a leak.
MAX_GROWTH_KB = 4096

started: list[subprocess.Popen] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"load: {url} did not answer within {timeout} s")


def spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started.append(proc)
    return proc


def stop_all() -> None:
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))


def hwm_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))


def get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=120) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code


def seed_moto() -> tuple[str, dict]:
    port = free_port()
    spawn([str(MOTO), "-H", "127.0.0.1", "-p", str(port)])
    endpoint = f"http://127.0.0.1:{port}"
    wait_http(f"{endpoint}/moto-api/")
    subprocess.run([str(VENV_PY), str(SEED), "--endpoint", endpoint, "seed"], check=True, capture_output=True)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(policy, f)
    out = subprocess.run(
        [str(VENV_PY), str(SEED), "--endpoint", endpoint, "auditor", "--policy-file", f.name],
        check=True, capture_output=True, text=True,
    )
    os.unlink(f.name)
    return endpoint, json.loads(out.stdout)


def slow_client(port: int, stop: threading.Event, closed_by_server: list[int]) -> None:
    """Sends a request head one byte a second; reconnects when cut off."""
    head = b"GET /health HTTP/1.1\r\nHost: load\r\nX-Slow: " + b"x" * 64
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                for byte in head:
                    if stop.is_set():
                        return
                    s.sendall(bytes([byte]))
                    time.sleep(1)
        except OSError:
            closed_by_server[0] += 1
            time.sleep(0.2)


def auditor(port: int, stop: threading.Event, statuses: dict[int, int]) -> None:
    while not stop.is_set():
        status = get(port, "/v1/audit?framework=cis-aws-3.0")
        statuses[status] = statuses.get(status, 0) + 1
        if status == 429:
            time.sleep(0.5)  # a polite client waits (the server says 10 s)


def run_wrk(port: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", "64", "-d", f"{DURATION}s", "--latency", f"http://127.0.0.1:{port}/health"],
        check=True, capture_output=True, text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return {
        "requests": requests,
        "requests_per_second": rps,
        "p99_ms": round(float(p99.group(1)) * scale, 3),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(x) for x in socket_errors.groups()) if socket_errors else 0,
    }


def main() -> int:
    for tool, hint in [(MOTO, "make venv"), (BINARY, "cargo build --release")]:
        if not tool.exists():
            raise SystemExit(f"load: {tool} missing: run {hint}")
    endpoint, creds = seed_moto()
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": creds["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": creds["secret_access_key"],
        "AWS_SESSION_TOKEN": creds["session_token"],
        "DSPM_LISTEN": f"127.0.0.1:{port}",
        "RUST_LOG": "warn",
    }
    server = spawn([str(BINARY), "serve"], env)
    wait_http(f"http://127.0.0.1:{port}/health")
    figures: dict = {"idle_rss_kb_before": rss_kb(server.pid)}

    stop = threading.Event()
    statuses: dict[int, int] = {}
    closed = [0]
    threads = [threading.Thread(target=slow_client, args=(port, stop, closed)) for _ in range(SLOW_CLIENTS)]
    threads += [threading.Thread(target=auditor, args=(port, stop, statuses)) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(1)
    figures["health_under_load"] = run_wrk(port)
    stop.set()
    for t in threads:
        t.join()
    figures["audits_during_load"] = {str(k): v for k, v in sorted(statuses.items())}
    figures["slow_connections_cut_off"] = closed[0]

    rss_at = {}
    for i in range(1, SOAK_AUDITS + 1):
        status = get(port, "/v1/audit")
        if status != 200:
            raise SystemExit(f"load: soak audit {i} answered {status}")
        if i in (10, SOAK_AUDITS):
            rss_at[i] = rss_kb(server.pid)
    figures["rss_kb_after_10_audits"] = rss_at[10]
    figures["rss_kb_after_50_audits"] = rss_at[SOAK_AUDITS]
    figures["peak_rss_kb"] = hwm_kb(server.pid)
    print(json.dumps(figures, indent=2))

    problems = []
    health = figures["health_under_load"]
    if health["non_2xx"] or health["socket_errors"]:
        problems.append(f"/health had {health['non_2xx']} non-2xx answers and {health['socket_errors']} socket errors")
    unexpected = {k: v for k, v in statuses.items() if k not in (200, 429)}
    if unexpected:
        problems.append(f"audits answered {unexpected}")
    if 429 not in statuses:
        problems.append("three audit clients against a limit of two never saw 429")
    growth = rss_at[SOAK_AUDITS] - rss_at[10]
    if growth > MAX_GROWTH_KB:
        problems.append(f"memory grew {growth} kB between audit 10 and audit {SOAK_AUDITS}")
    for p in problems:
        print(f"load: FAIL: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        stop_all()
