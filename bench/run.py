#!/usr/bin/env python3
"""The benchmark driver behind `make bench` and `make bench-smoke`.

    run.py --binary target/release/dspm-audit --size large --delay-ms 30 \
           --concurrency "4 8 16 32" --out bench/results.json
    run.py --smoke --binary target/debug/dspm-audit --out target/bench-smoke/results.json
    run.py --check FILE          # is FILE a well-formed results document?

What it does, all on 127.0.0.1 (every process it starts is stopped by its
PID on every exit, errors and signals included; every wait is bounded):

 1. starts moto (tests/moto's pinned moto_server) and seeds the account
    with bench/fixture.py (boto3);
 2. measures moto's own capacity (wrk, S3 GetBucketAcl, no delay);
 3. starts bench/standin.py as a latency proxy in front of moto (fixed delay
    per request), audits once to warm up (the credential report is
    generated), then audits again at the default concurrency, recording
    every answer: the "moto" run;
 4. picks the stand-in for the timed runs: the replay of that recording
    (bench/standin.py replay, same delay) when moto cannot serve the rate
    the sweep asks for (highest concurrency / delay, with a 2x margin),
    else the proxy; checks that the replayed audit's report equals moto's;
 5. concurrency sweep: `dspm-audit scan` per DSPM_AWS_CONCURRENCY value:
    wall time, calls by action, lower bound and ratio, peak RSS and CPU
    time (GNU time; VmHWM sampled from /proc as a cross-check);
 6. `dspm-audit serve`: start-up to the first /health 200, idle RSS, /health
    under wrk (64 connections, 10 s) idle and during an audit, peak RSS;
 7. binary sizes, the machine, the load average next to every timed figure;
 8. writes the results JSON and prints a Markdown table.

Before each timed run it waits (bounded by --load-wait seconds) for the
1-minute load average to drop below --max-load, and records the load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
SCHEMA = 1
DEFAULT_CONCURRENCY = 8  # the product's default DSPM_AWS_CONCURRENCY (src/aws/client.rs)
LOOPBACK = "127.0.0.1"
GNU_TIME = "/usr/bin/time"  # Debian package `time`
TARGETS = {  # issue 7, for the large account at 30 ms
    "ratio_at_default_concurrency": 1.3,
    "aws_calls_per_bucket": 8,
    "peak_rss_mb": 40,
    "idle_rss_mb": 10,
    "startup_ms": 50,
    "health_p99_during_audit_ms": 10,
}


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------
# processes: every one we start is tracked and stopped by PID
# --------------------------------------------------------------------------


class Processes:
    def __init__(self) -> None:
        self.live: list[subprocess.Popen] = []

    def start(self, argv: list[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(argv, **kwargs)
        self.live.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 10.0) -> None:
        if proc.returncode is None:
            try:
                proc.send_signal(signal.SIGTERM)  # this PID only
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=grace)
            except ProcessLookupError:
                pass
        if proc in self.live:
            self.live.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self.live)):
            try:
                self.stop(proc)
            except Exception as err:  # keep stopping the others
                print(f"bench: could not stop pid {proc.pid}: {err}", file=sys.stderr)


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def wait_for_load(max_load: float, max_wait: float) -> dict:
    started = time.monotonic()
    load = loadavg()
    while load >= max_load and time.monotonic() - started < max_wait:
        time.sleep(5)
        load = loadavg()
    return {"load1": load, "waited_s": round(time.monotonic() - started, 1), "below_max": load < max_load}


def proc_status(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def proc_cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def http(port: int, method: str, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://{LOOPBACK}:{port}{path}", method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 (loopback only)
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_http(port: int, path: str, seconds: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"process {proc.args[0]} exited with {proc.returncode} before answering")
        try:
            if http(port, "GET", path, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise BenchError(f"http://{LOOPBACK}:{port}{path} gave no 200 within {seconds} s")


def health_ok(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def mb(kib: int | None) -> float | None:
    return None if kib is None else round(kib * 1024 / 1e6, 2)


# --------------------------------------------------------------------------
# the stand-ins
# --------------------------------------------------------------------------


def start_moto(procs: Processes, work: Path) -> tuple[subprocess.Popen, int]:
    server = Path(sys.executable).parent / "moto_server"
    if not server.exists():
        raise BenchError(f"{server} not found: run `make venv`")
    port = free_port()
    log = open(work / "moto.log", "wb")
    env = dict(os.environ, AWS_EC2_METADATA_DISABLED="true", PYTHONUNBUFFERED="1")
    proc = procs.start([str(server), "-H", LOOPBACK, "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, env=env)
    wait_http(port, "/moto-api/", 30, proc)
    return proc, port


def start_standin(procs: Processes, work: Path, mode: str, delay_ms: float, **opts) -> tuple[subprocess.Popen, int]:
    argv = [sys.executable, str(BENCH / "standin.py"), mode, "--delay-ms", str(delay_ms)]
    for name, value in opts.items():
        argv += [f"--{name}", str(value)]
    log = open(work / f"standin-{mode}-{len(procs.live)}.log", "wb")
    proc = procs.start(argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("READY "):
        raise BenchError(f"standin {mode} did not start: {line!r} (log {log.name})")
    return proc, int(line.split()[1])


def standin_stats(port: int) -> dict:
    return json.loads(http(port, "GET", "/__bench/stats")[1])


def standin_reset(port: int) -> None:
    http(port, "POST", "/__bench/reset")


# --------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise BenchError(f"cannot read wrk latency {text!r}")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def run_wrk(url: str, connections: int, seconds: int, threads: int = 2) -> dict | None:
    if shutil.which("wrk") is None:
        return None
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if out.returncode != 0:
        raise BenchError(f"wrk failed ({out.returncode}): {out.stderr[-500:]}")
    text = out.stdout
    result = {"connections": connections, "seconds": seconds, "threads": threads}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    result["requests_per_s"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", text)
    result["requests"] = int(m.group(1)) if m else None
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        result[f"p{pct}_ms"] = round(to_ms(m.group(1)), 3) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    result["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    result["socket_errors"] = sum(map(int, m.groups())) if m else 0
    return result


# --------------------------------------------------------------------------
# the product
# --------------------------------------------------------------------------


def product_env(endpoint_port: int, concurrency: int) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{LOOPBACK}:{endpoint_port}",
        # moto runs without auth enforcement: any temporary-looking keys do.
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "DSPM_AWS_CONCURRENCY": str(concurrency),
        "RUST_LOG": "warn",
    }


def child_pid(pid: int) -> int | None:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def run_scan(binary: str, env: dict, work: Path, tag: str, timeout: float) -> dict:
    """One `scan --format json` under GNU time: wall time, peak RSS, CPU, report.

    Peak RSS and CPU come from GNU time (wait4 rusage of the product alone:
    time is a small C program, so the fork of a large Python parent, which
    wait4 from Python would count, does not inflate it). VmHWM of the
    product is also sampled from /proc every 20 ms as a cross-check.
    """
    out_path, err_path, time_path = (work / f"report-{tag}.json", work / f"scan-{tag}.err",
                                     work / f"time-{tag}.txt")
    argv = [GNU_TIME, "-f", "%M %U %S", "-o", str(time_path), binary, "scan", "--format", "json"]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    hwm_sampled = 0
    product = None
    try:
        while proc.poll() is None:
            product = product or child_pid(proc.pid)
            if product:
                hwm_sampled = max(hwm_sampled, proc_status(product, "VmHWM") or 0)
            if time.perf_counter() - started > timeout:
                raise BenchError(f"scan {tag} did not finish within {timeout:.0f} s")
            time.sleep(0.02)
    finally:
        if proc.returncode is None:
            if product:
                try:
                    os.kill(product, signal.SIGKILL)  # the product under time, by its PID
                except ProcessLookupError:
                    pass
            proc.kill()
            proc.wait(10)
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise BenchError(f"scan {tag} exited {proc.returncode}: {err_path.read_text()[-1500:]}")
    maxrss, user, system = time_path.read_text().split()[-3:]
    report = json.loads(out_path.read_text())
    return {
        "wall_s": round(wall, 3),
        "exit_code": proc.returncode,
        "peak_rss_kib": int(maxrss),
        "peak_rss_kib_sampled": hwm_sampled,
        "cpu_user_s": float(user),
        "cpu_system_s": float(system),
        "report": report,
        "report_path": str(out_path),
    }


def lower_bound(collection: dict, concurrency: int, delay_s: float) -> dict:
    """Calls on the critical path at this concurrency, times the delay.

    Model (src/collect): GetCallerIdentity comes first and alone; then S3, IAM
    and Organizations run side by side under one limit of `concurrency`
    calls in flight. Two bounds, the larger wins:
      work bound  1 + ceil((N - 1) / C) rounds, N = every call made;
      chain bound 1 + the longest chain of calls that must follow one another:
        S3: GetAccountPublicAccessBlock -> ListBuckets pages -> one bucket's
            reads (sequential per bucket: one per per-bucket action seen);
        IAM: ListUsers -> the user's two lists; ListPolicies ->
            GetPolicyVersion; GenerateCredentialReport (x times) -> Get;
        Organizations: every call (they are sequential).
    A GenerateCredentialReport that is repeated also waits 250 ms, 500 ms,
    ... between attempts (src/collect/iam.rs); that wait is added.
    """
    by = collection["requests_by_action"]
    n = collection["aws_requests"]
    per_bucket_actions = [a for a in by if a.startswith("s3:") and a not in
                          ("s3:ListAllMyBuckets", "s3:GetAccountPublicAccessBlock")]
    s3_chain = by.get("s3:GetAccountPublicAccessBlock", 0) + by.get("s3:ListAllMyBuckets", 0) + len(per_bucket_actions)
    user_chain = by.get("iam:ListUsers", 0) + (1 if by.get("iam:ListAttachedUserPolicies") else 0) + (
        1 if by.get("iam:ListUserPolicies") else 0)
    policy_chain = by.get("iam:ListPolicies", 0) + (1 if by.get("iam:GetPolicyVersion") else 0)
    generates = by.get("iam:GenerateCredentialReport", 0)
    report_chain = generates + by.get("iam:GetCredentialReport", 0)
    org_chain = sum(v for a, v in by.items() if a.startswith("organizations:"))
    chain = 1 + max(s3_chain, user_chain, policy_chain, report_chain, org_chain, 1)
    work = 1 + math.ceil(max(n - 1, 0) / concurrency)
    report_wait = sum(min(0.25 * 2 ** i, 4.0) for i in range(max(generates - 1, 0)))
    calls = max(chain, work)
    return {
        "model": "delay x max(1 + ceil((N-1)/C), 1 + longest dependent chain) + credential-report waits",
        "total_calls": n,
        "work_bound_calls": work,
        "chain_bound_calls": chain,
        "critical_path_calls": calls,
        "credential_report_wait_s": report_wait,
        "seconds": round(calls * delay_s + report_wait, 3),
    }


def per_resource(collection: dict, fixture: dict) -> dict:
    by = collection["requests_by_action"]
    s3_bucket_calls = sum(v for a, v in by.items() if a.startswith("s3:") and a not in
                          ("s3:ListAllMyBuckets", "s3:GetAccountPublicAccessBlock"))
    user_calls = by.get("iam:ListAttachedUserPolicies", 0) + by.get("iam:ListUserPolicies", 0)
    iam_calls = sum(v for a, v in by.items() if a.startswith("iam:"))
    return {
        "s3_calls_per_bucket": round(s3_bucket_calls / fixture["buckets"], 3),
        "iam_calls_per_user": round(user_calls / fixture["users"], 3),
        "get_policy_version_per_policy": round(by.get("iam:GetPolicyVersion", 0) / fixture["policies"], 3),
        "s3_calls": sum(v for a, v in by.items() if a.startswith("s3:")),
        "iam_calls": iam_calls,
        "other_calls": collection["aws_requests"] - iam_calls - sum(v for a, v in by.items() if a.startswith("s3:")),
    }


def summarize_run(raw: dict, *, standin: str, concurrency: int, delay_s: float, fixture: dict,
                  load: dict, stats: dict, repeat: int) -> dict:
    collection = raw["report"].get("collection")
    if not collection:
        raise BenchError("the report has no `collection` (is this binary older than the collection stats?)")
    lb = lower_bound(collection, concurrency, delay_s)
    cpu = raw["cpu_user_s"] + raw["cpu_system_s"]
    return {
        "standin": standin,
        "concurrency": concurrency,
        "repeat": repeat,
        "load": load,
        "wall_s": raw["wall_s"],
        "exit_code": raw["exit_code"],
        "report_duration_ms": raw["report"].get("duration_ms"),
        "aws_requests": collection["aws_requests"],
        "retries": collection["retries"],
        "redirects": collection["redirects"],
        "requests_by_action": collection["requests_by_action"],
        "per_resource": per_resource(collection, fixture),
        "lower_bound": lb,
        "ratio": round(raw["wall_s"] / lb["seconds"], 3) if lb["seconds"] else None,
        "peak_rss_kib": raw["peak_rss_kib"],
        "peak_rss_kib_sampled": raw["peak_rss_kib_sampled"],
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_1000_calls": round(cpu * 1000 / collection["aws_requests"] * 1000, 1),
        "results": len(raw["report"].get("results", [])),
        "standin_stats": stats,
    }


def comparable(report: dict) -> dict:
    results = sorted(json.dumps(r, sort_keys=True) for r in report.get("results", []))
    collection = dict(report.get("collection") or {})
    return {
        "account": report.get("account"),
        "region": report.get("region"),
        "frameworks": report.get("frameworks"),
        "results": results,
        "requests_by_action": collection.get("requests_by_action"),
    }


def compare_reports(a: dict, b: dict) -> dict:
    ca, cb = comparable(a), comparable(b)
    differing = [k for k in ca if ca[k] != cb[k]]
    only_a = sorted(set(ca["results"]) - set(cb["results"]))
    only_b = sorted(set(cb["results"]) - set(ca["results"]))
    return {
        "equal": not differing,
        "compared": "account, region, frameworks (counts per control), every result "
                    "(framework, control, check, resource, region, status, severity, reason, evidence), "
                    "AWS calls by action; not the timestamps or durations",
        "differing_fields": differing,
        "results_only_in_moto_run": only_a[:5],
        "results_only_in_replay_run": only_b[:5],
        "results": [len(ca["results"]), len(cb["results"])],
    }


# --------------------------------------------------------------------------
# serve mode
# --------------------------------------------------------------------------


def startup_times(binary: str, env: dict, runs: int) -> dict:
    times = []
    rss_ready = None
    for _ in range(runs):
        port = free_port()
        run_env = dict(env, DSPM_LISTEN=f"{LOOPBACK}:{port}")
        start = time.perf_counter()
        proc = subprocess.Popen([binary, "serve"], env=run_env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        try:
            while not health_ok(port):
                if proc.poll() is not None:
                    raise BenchError(f"serve exited {proc.returncode} during start-up")
                if time.perf_counter() - start > 10:
                    raise BenchError("serve gave no /health 200 within 10 s")
            times.append((time.perf_counter() - start) * 1000)
            rss_ready = rss_ready or proc_status(proc.pid, "VmRSS")
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    times.sort()
    return {
        "runs": runs,
        "median_ms": round(times[len(times) // 2], 2),
        "min_ms": round(times[0], 2),
        "max_ms": round(times[-1], 2),
        "rss_at_first_200_kib": rss_ready,
    }


def serve_figures(procs: Processes, binary: str, env: dict, standin_port: int, args, max_wait: float) -> dict:
    figures: dict = {"startup": startup_times(binary, env, args.startup_runs)}
    port = free_port()
    server = procs.start([binary, "serve"], env=dict(env, DSPM_LISTEN=f"{LOOPBACK}:{port}"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        wait_http(port, "/health", 10, server)
        time.sleep(1.0)
        figures["idle_rss_kib"] = proc_status(server.pid, "VmRSS")
        figures["idle_hwm_kib"] = proc_status(server.pid, "VmHWM")
        url = f"http://{LOOPBACK}:{port}/health"
        figures["wrk_idle_load"] = wait_for_load(args.max_load, max_wait)
        figures["wrk_idle"] = run_wrk(url, args.wrk_connections, args.wrk_seconds)

        figures["audit_load"] = wait_for_load(args.max_load, max_wait)
        standin_reset(standin_port)
        cpu_before = proc_cpu_seconds(server.pid)
        audit: dict = {}

        def one_audit() -> None:
            t = time.perf_counter()
            try:
                status, body = http(port, "GET", "/v1/audit", timeout=args.scan_timeout)
                audit["status"] = status
                audit["bytes"] = len(body)
                report = json.loads(body)
                audit["aws_requests"] = (report.get("collection") or {}).get("aws_requests")
            except Exception as err:  # reported, not raised from the thread
                audit["error"] = repr(err)
            audit["wall_s"] = round(time.perf_counter() - t, 3)
            audit["ended"] = time.monotonic()

        thread = threading.Thread(target=one_audit, daemon=True)
        thread.start()
        time.sleep(min(1.0, args.wrk_seconds / 5))
        wrk_started = time.monotonic()
        figures["wrk_during_audit"] = run_wrk(url, args.wrk_connections, args.wrk_seconds)
        wrk_ended = time.monotonic()
        thread.join(args.scan_timeout)
        if thread.is_alive():
            raise BenchError("the audit through serve did not finish")
        if "error" in audit or audit.get("status") != 200:
            raise BenchError(f"audit through serve failed: {audit}")
        audit["covered_wrk_window"] = audit["ended"] >= wrk_ended
        audit["overlap_s"] = round(max(0.0, min(audit["ended"], wrk_ended) - wrk_started), 2)
        del audit["ended"]
        cpu_after = proc_cpu_seconds(server.pid)
        figures["audit"] = audit
        figures["peak_rss_kib"] = proc_status(server.pid, "VmHWM")
        figures["cpu_s_during_audit_and_wrk"] = round(cpu_after - cpu_before, 2) if cpu_before is not None else None
        time.sleep(2.0)
        figures["rss_after_audit_kib"] = proc_status(server.pid, "VmRSS")
        figures["standin_stats"] = standin_stats(standin_port)
    finally:
        procs.stop(server)
    return figures


# --------------------------------------------------------------------------
# alternatives and context
# --------------------------------------------------------------------------


def gaad_alternative(moto_port: int, fixture: dict) -> dict:
    """What iam:GetAccountAuthorizationDetails would answer on this account."""
    sys.path.insert(0, str(ROOT / "tests" / "moto"))
    import seed  # noqa: PLC0415

    seed.sanitize_environment()
    iam = seed.Moto(f"http://{LOOPBACK}:{moto_port}").client("iam")
    pages, users, policies, nbytes = 0, 0, 0, 0
    marker = None
    started = time.perf_counter()
    while True:
        kwargs = {"Filter": ["User", "LocalManagedPolicy"], "MaxItems": 1000}
        if marker:
            kwargs["Marker"] = marker
        page = iam.get_account_authorization_details(**kwargs)
        pages += 1
        users += len(page.get("UserDetailList", []))
        policies += len(page.get("Policies", []))
        nbytes += int(page["ResponseMetadata"]["HTTPHeaders"].get("content-length", 0))
        marker = page.get("Marker") if page.get("IsTruncated") else None
        if not marker or pages > 50:
            break
    items = fixture["users"] + fixture["policies"]
    current = 1 + 2 * fixture["users"] + 1 + fixture["policies"]
    return {
        "action": "iam:GetAccountAuthorizationDetails (Filter=User,LocalManagedPolicy)",
        "moto_pages": pages,
        "moto_users": users,
        "moto_policies": policies,
        "moto_response_bytes": nbytes,
        "moto_seconds": round(time.perf_counter() - started, 3),
        "aws_pages_at_max_items_1000": math.ceil(items / 1000),
        "aws_pages_at_default_100": math.ceil(items / 100),
        "replaces_calls": current,
        "replaces": "ListUsers + ListAttachedUserPolicies and ListUserPolicies per user + ListPolicies + "
                    "GetPolicyVersion per policy",
        "note": "moto ignores MaxItems (one page); AWS pages by MaxItems (default 100, at most 1000) "
                "and may return fewer",
    }


def machine() -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = proc_meminfo("MemTotal")

    def version(argv: list[str]) -> str | None:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 1024 / 1024, 1) if mem else None,
        "kernel": platform.release(),
        "arch": platform.machine(),
        "rustc": version(["rustc", "--version"]),
        "python": platform.python_version(),
        "moto": safe_version("moto"),
        "boto3": safe_version("boto3"),
        "wrk": version(["wrk", "-v"]),
        "shared": "2 cores shared with other engineers' builds and fuzzers; the 1-minute load is recorded per figure",
    }


def proc_meminfo(field: str) -> int | None:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def safe_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git(*argv: str) -> str:
    try:
        out = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()


def binaries(binary: str) -> dict:
    out = {
        "release": {"path": binary, "bytes": os.path.getsize(binary),
                    "built": datetime.fromtimestamp(os.path.getmtime(binary), timezone.utc).isoformat(timespec="seconds")},
        "commit": git("rev-parse", "--short=7", "HEAD") or None,
        "uncommitted_in_src": git("status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock").splitlines(),
    }
    target = Path(binary).resolve().parents[1]
    static = target / "x86_64-unknown-linux-musl" / "release" / "dspm-audit"
    if static.exists():
        out["static_musl"] = {
            "path": str(static),
            "bytes": static.stat().st_size,
            "built": datetime.fromtimestamp(static.stat().st_mtime, timezone.utc).isoformat(timespec="seconds"),
            "note": "as last built by `make static` (not rebuilt by the benchmark)",
        }
    else:
        out["static_musl"] = None
    return out


def replay_probe_target(recording: Path) -> str | None:
    entries = json.loads(recording.read_text())["entries"]
    for key in entries:
        method, target = key.split("\n")[:2]
        if method == "GET" and target.endswith("?acl="):
            return target
    return None


# --------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------


def benchmark(args: argparse.Namespace, procs: Processes, work: Path) -> dict:
    deadline = time.monotonic() + args.budget
    delay_s = args.delay_ms / 1000.0

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BenchError(f"time budget of {args.budget} s used up")
        return remaining

    def load_wait() -> float:
        return min(args.load_wait, max(0.0, left() - 60))

    results: dict = {
        "schema": SCHEMA,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["bench/run.py", *sys.argv[1:]]),
        "parameters": {
            "size": args.size,
            "delay_ms": args.delay_ms,
            "concurrency": args.concurrency,
            "default_concurrency": DEFAULT_CONCURRENCY,
            "repeat": args.repeat,
            "max_load": args.max_load,
            "load_wait_s": args.load_wait,
            "wrk_connections": args.wrk_connections,
            "wrk_seconds": args.wrk_seconds,
            "smoke": args.smoke,
        },
        "machine": machine(),
        "binary": binaries(args.binary),
    }
    print(f"bench: {args.size} account, {args.delay_ms} ms per call, concurrency {args.concurrency}", flush=True)

    moto, moto_port = start_moto(procs, work)
    started = time.monotonic()
    out = subprocess.run([sys.executable, str(BENCH / "fixture.py"), "--endpoint", f"http://{LOOPBACK}:{moto_port}",
                          "--size", args.size], capture_output=True, text=True, timeout=left(), check=False)
    if out.returncode != 0:
        raise BenchError(f"fixture.py failed: {out.stderr[-2000:]}")
    fixture = json.loads(out.stdout)
    fixture["wall_seconds"] = round(time.monotonic() - started, 1)
    results["fixture"] = fixture
    print(f"bench: seeded {fixture['buckets']} buckets, {fixture['users']} users, {fixture['policies']} policies "
          f"({fixture['boto3_calls']} boto3 calls) in {fixture['total_seconds']} s", flush=True)

    standin_info: dict = {"required_rps_at_max_concurrency": round(max(args.concurrency) / delay_s, 1)}
    wrk_probe = "/" + "bench-00000-us-east-1" + "?acl="
    load = wait_for_load(args.max_load, load_wait())
    cap = run_wrk(f"http://{LOOPBACK}:{moto_port}{wrk_probe}", 8, args.capacity_seconds, threads=1)
    standin_info["moto_capacity"] = dict(cap, load=load, request="S3 GetBucketAcl, no delay") if cap else None

    recording = work / "recording.json"
    proxy, proxy_port = start_standin(procs, work, "proxy", args.delay_ms,
                                      upstream=f"http://{LOOPBACK}:{moto_port}", record=recording)
    default_env = product_env(proxy_port, DEFAULT_CONCURRENCY)
    run_scan(args.binary, default_env, work, "warmup", left())  # generates the credential report
    standin_reset(proxy_port)
    load = wait_for_load(args.max_load, load_wait())
    raw = run_scan(args.binary, default_env, work, "moto", left())
    moto_run = summarize_run(raw, standin="moto+proxy", concurrency=DEFAULT_CONCURRENCY, delay_s=delay_s,
                             fixture=fixture, load=load, stats=standin_stats(proxy_port), repeat=0)
    moto_report = raw["report"]
    http(proxy_port, "POST", "/__bench/save")
    print(f"bench: moto run at concurrency {DEFAULT_CONCURRENCY}: {moto_run['wall_s']} s, "
          f"{moto_run['aws_requests']} calls, ratio {moto_run['ratio']}", flush=True)
    results["moto_run"] = moto_run

    capacity = (cap or {}).get("requests_per_s")
    need = standin_info["required_rps_at_max_concurrency"]
    if args.standin == "auto":
        use_replay = capacity is None or capacity < 2 * need
        why = (f"moto served {capacity} req/s with no delay; the sweep needs up to {need} req/s "
               f"(concurrency {max(args.concurrency)} / {args.delay_ms} ms), and a 2x margin")
    else:
        use_replay = args.standin == "replay"
        why = f"--standin {args.standin}"
    standin_info["used"] = "replay" if use_replay else "moto+proxy"
    standin_info["why"] = why

    if use_replay:
        procs.stop(proxy)
        probe = replay_probe_target(recording)
        if probe and shutil.which("wrk"):
            fast, fast_port = start_standin(procs, work, "replay", 0, recording=recording)
            load = wait_for_load(args.max_load, load_wait())
            rcap = run_wrk(f"http://{LOOPBACK}:{fast_port}{probe}", max(args.concurrency), args.capacity_seconds,
                           threads=1)
            standin_info["replay_capacity"] = dict(rcap, load=load, request="S3 GetBucketAcl, no delay")
            procs.stop(fast)
        standin, standin_port = start_standin(procs, work, "replay", args.delay_ms, recording=recording)
        standin_info["recording_keys"] = len(json.loads(recording.read_text())["entries"])
    else:
        standin, standin_port = proxy, proxy_port
    results["standin"] = standin_info

    runs = []
    for concurrency in args.concurrency:
        for rep in range(args.repeat):
            load = wait_for_load(args.max_load, load_wait())
            standin_reset(standin_port)
            tag = f"c{concurrency}-r{rep}"
            raw = run_scan(args.binary, product_env(standin_port, concurrency), work, tag, left())
            run = summarize_run(raw, standin=standin_info["used"], concurrency=concurrency, delay_s=delay_s,
                                fixture=fixture, load=load, stats=standin_stats(standin_port), repeat=rep)
            if standin_info["used"] == "replay" and run["standin_stats"]["misses"]:
                raise BenchError(f"replay missed {run['standin_stats']['misses']} requests in run {tag}")
            if concurrency == DEFAULT_CONCURRENCY and rep == 0:
                results["replay_equals_moto"] = compare_reports(moto_report, raw["report"])
            runs.append(run)
            print(f"bench: concurrency {concurrency:>3} (load {load['load1']:.2f}): {run['wall_s']:7.2f} s, "
                  f"{run['aws_requests']} calls, lower bound {run['lower_bound']['seconds']} s, "
                  f"ratio {run['ratio']}, peak RSS {mb(run['peak_rss_kib'])} MB", flush=True)
    results["runs"] = runs
    if "replay_equals_moto" not in results:
        results["replay_equals_moto"] = None

    # The shipped artefact is the static musl build (musl's allocator, not
    # glibc's): one scan at the default concurrency with it, if `make static`
    # has built it (the benchmark never builds it).
    static = (results["binary"].get("static_musl") or {}).get("path")
    results["static_musl_run"] = None
    if static and os.access(static, os.X_OK):
        load = wait_for_load(args.max_load, load_wait())
        standin_reset(standin_port)
        raw = run_scan(static, product_env(standin_port, DEFAULT_CONCURRENCY), work, "musl", left())
        run = summarize_run(raw, standin=standin_info["used"], concurrency=DEFAULT_CONCURRENCY, delay_s=delay_s,
                            fixture=fixture, load=load, stats=standin_stats(standin_port), repeat=0)
        run["binary"] = "static_musl"
        results["static_musl_run"] = run
        print(f"bench: static musl binary, concurrency {DEFAULT_CONCURRENCY}: {run['wall_s']} s, "
              f"ratio {run['ratio']}, peak RSS {mb(run['peak_rss_kib'])} MB", flush=True)

    serve_env = product_env(standin_port, DEFAULT_CONCURRENCY)
    results["serve"] = serve_figures(procs, args.binary, serve_env, standin_port, args, load_wait())
    results["alternatives"] = {"iam_get_account_authorization_details": gaad_alternative(moto_port, fixture)}
    procs.stop(standin)
    procs.stop(moto)
    results["targets"] = evaluate_targets(results)
    return results


def peak_of(binary: str, argv: list[str], env: dict, work: Path, tag: str, timeout: float) -> dict:
    """Peak RSS (GNU time) and wall time of one run of the product; stdout to a file."""
    out_path, time_path = work / f"mem-{tag}.out", work / f"mem-{tag}.time"
    started = time.perf_counter()
    with open(out_path, "wb") as out:
        proc = subprocess.run([GNU_TIME, "-f", "%M", "-o", str(time_path), binary, *argv], env=env, stdout=out,
                              stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=timeout, check=False)
    if proc.returncode not in (0, 1):
        raise BenchError(f"{tag}: exit {proc.returncode}")
    return {"peak_rss_kib": int(time_path.read_text().split()[-1]), "wall_s": round(time.perf_counter() - started, 2),
            "output_bytes": out_path.stat().st_size, "out": out_path}


def serve_peak(procs: Processes, binary: str, env: dict) -> dict:
    """VmHWM of `serve` over one GET /v1/audit, and VmRSS 2 s after it."""
    port = free_port()
    server = procs.start([binary, "serve"], env=dict(env, DSPM_LISTEN=f"{LOOPBACK}:{port}"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        wait_http(port, "/health", 10, server)
        status, body = http(port, "GET", "/v1/audit", timeout=600)
        if status != 200:
            raise BenchError(f"serve audit answered {status}")
        peak = proc_status(server.pid, "VmHWM")
        time.sleep(2.0)
        return {"peak_rss_kib": peak, "rss_2s_after_kib": proc_status(server.pid, "VmRSS"), "response_bytes": len(body)}
    finally:
        procs.stop(server)


def memory_breakdown(args: argparse.Namespace, procs: Processes, work: Path) -> dict:
    """Where the peak memory goes: collection alone, report alone (from a
    saved inventory), one framework at a time, glibc with fewer malloc
    arenas, the static musl build, and `serve`. Against a replay of the
    account at --memory-delay-ms (memory does not depend on the delay)."""
    commit = git("rev-parse", "--short=7", "HEAD") or None
    dirty = git("status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock").splitlines()
    moto, moto_port = start_moto(procs, work)
    out = subprocess.run([sys.executable, str(BENCH / "fixture.py"), "--endpoint", f"http://{LOOPBACK}:{moto_port}",
                          "--size", args.size], capture_output=True, text=True, timeout=900, check=False)
    if out.returncode != 0:
        raise BenchError(f"fixture.py failed: {out.stderr[-2000:]}")
    recording = work / "mem-recording.json"
    proxy, proxy_port = start_standin(procs, work, "proxy", 0, upstream=f"http://{LOOPBACK}:{moto_port}",
                                      record=recording)
    env = product_env(proxy_port, DEFAULT_CONCURRENCY)
    peak_of(args.binary, ["collect"], env, work, "warmup", 900)
    standin_reset(proxy_port)
    inventory = peak_of(args.binary, ["collect"], env, work, "inventory", 900)["out"]
    http(proxy_port, "POST", "/__bench/save")
    procs.stop(proxy)
    procs.stop(moto)
    replay, replay_port = start_standin(procs, work, "replay", args.memory_delay_ms, recording=recording)
    env = product_env(replay_port, DEFAULT_CONCURRENCY)
    glibc = args.binary
    musl = (binaries(args.binary).get("static_musl") or {}).get("path")
    inv = str(inventory)
    cases = [
        ("scan", glibc, ["scan", "--format", "json"], {}),
        ("scan, MALLOC_ARENA_MAX=1", glibc, ["scan", "--format", "json"], {"MALLOC_ARENA_MAX": "1"}),
        ("scan, static musl", musl, ["scan", "--format", "json"], {}),
        ("collect", glibc, ["collect"], {}),
        ("collect, MALLOC_ARENA_MAX=1", glibc, ["collect"], {"MALLOC_ARENA_MAX": "1"}),
        ("collect, static musl", musl, ["collect"], {}),
        ("collect, DSPM_AWS_CONCURRENCY=1", glibc, ["collect"], {"DSPM_AWS_CONCURRENCY": "1"}),
        ("scan --inventory, json", glibc, ["scan", "--inventory", inv, "--format", "json"], {}),
        ("scan --inventory, json, static musl", musl, ["scan", "--inventory", inv, "--format", "json"], {}),
        ("scan --inventory, table", glibc, ["scan", "--inventory", inv, "--format", "table"], {}),
        ("scan --inventory --framework cis-aws-3.0", glibc,
         ["scan", "--inventory", inv, "--framework", "cis-aws-3.0", "--format", "json"], {}),
        ("scan --inventory --framework isms-p-2023", glibc,
         ["scan", "--inventory", inv, "--framework", "isms-p-2023", "--format", "json"], {}),
    ]
    rows = []
    for i, (label, binary, argv, extra) in enumerate(cases):
        if not binary:
            continue
        r = peak_of(binary, argv, dict(env, **extra), work, f"case{i}", 900)
        row = {"run": label, "peak_rss_kib": r["peak_rss_kib"], "peak_rss_mb": mb(r["peak_rss_kib"]),
               "wall_s": r["wall_s"], "output_bytes": r["output_bytes"]}
        if argv[0] == "scan" and "--format" in argv and argv[argv.index("--format") + 1] == "json":
            row["results"] = len(json.loads(r["out"].read_text()).get("results", []))
        rows.append(row)
        print(f"bench memory: {label:<45} {row['peak_rss_mb']:>6} MB", flush=True)
    serve = []
    for label, binary, extra in (("serve", glibc, {}), ("serve, MALLOC_ARENA_MAX=2", glibc, {"MALLOC_ARENA_MAX": "2"}),
                                 ("serve, static musl", musl, {})):
        if binary:
            r = serve_peak(procs, binary, dict(env, **extra))
            serve.append({"run": label, **r, "peak_rss_mb": mb(r["peak_rss_kib"]),
                          "rss_2s_after_mb": mb(r["rss_2s_after_kib"])})
            print(f"bench memory: {label:<45} {mb(r['peak_rss_kib']):>6} MB, {mb(r['rss_2s_after_kib'])} MB after",
                  flush=True)
    procs.stop(replay)
    return {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["bench/run.py", *sys.argv[1:]]),
        "commit": commit,
        "uncommitted_in_src": dirty,
        "binary_built": datetime.fromtimestamp(os.path.getmtime(args.binary), timezone.utc).isoformat(timespec="seconds"),
        "size": args.size,
        "delay_ms": args.memory_delay_ms,
        "concurrency": DEFAULT_CONCURRENCY,
        "inventory_bytes": inventory.stat().st_size,
        "runs": rows,
        "serve": serve,
        "load1_at_end": loadavg(),
    }


def headline(results: dict) -> dict | None:
    runs = [r for r in results.get("runs", []) if r["concurrency"] == DEFAULT_CONCURRENCY]
    if not runs:
        return None
    return sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]


def evaluate_targets(results: dict) -> list[dict]:
    run = headline(results)
    serve = results.get("serve", {})
    during = serve.get("wrk_during_audit") or {}
    measured = {
        "ratio_at_default_concurrency": run and run["ratio"],
        "aws_calls_per_bucket": run and run["per_resource"]["s3_calls_per_bucket"],
        "peak_rss_mb": run and mb(run["peak_rss_kib"]),
        "idle_rss_mb": mb(serve.get("idle_rss_kib")),
        "startup_ms": (serve.get("startup") or {}).get("median_ms"),
        "health_p99_during_audit_ms": during.get("p99_ms"),
    }
    out = []
    for name, target in TARGETS.items():
        value = measured[name]
        out.append({"name": name, "target": target, "measured": value,
                    "met": None if value is None else value <= target})
    return out


def markdown_table(results: dict) -> str:
    lines = ["| concurrency | stand-in | load | wall s | calls | lower bound s | ratio | peak RSS MB | CPU ms / 1000 calls |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in [results.get("moto_run")] + results.get("runs", []) + [results.get("static_musl_run")]:
        if not r:
            continue
        label = r["standin"] + (" (static musl)" if r.get("binary") == "static_musl" else "")
        lines.append(f"| {r['concurrency']} | {label} | {r['load']['load1']:.2f} | {r['wall_s']:.2f} | "
                     f"{r['aws_requests']} | {r['lower_bound']['seconds']:.2f} | {r['ratio']:.2f} | "
                     f"{mb(r['peak_rss_kib'])} | {r['cpu_ms_per_1000_calls']} |")
    lines.append("")
    lines.append("| target | goal | measured | met |")
    lines.append("|---|---:|---:|---|")
    for t in results.get("targets", []):
        lines.append(f"| {t['name']} | {t['target']} | {t['measured']} | {t['met']} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# well-formedness (make bench-smoke)
# --------------------------------------------------------------------------


def check(path: Path) -> list[str]:
    problems = []
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return [f"{path}: not readable JSON: {err}"]
    for key in ("schema", "parameters", "machine", "binary", "fixture", "standin", "moto_run", "runs",
                "serve", "alternatives", "targets"):
        if key not in data:
            problems.append(f"missing {key}")
    if problems:
        return problems
    if data["schema"] != SCHEMA:
        problems.append(f"schema {data['schema']} != {SCHEMA}")
    if not data["runs"]:
        problems.append("no runs")
    for run in [data["moto_run"], *data["runs"]]:
        for key, kind in (("wall_s", float), ("aws_requests", int), ("ratio", float), ("peak_rss_kib", int),
                          ("cpu_ms_per_1000_calls", float)):
            if not isinstance(run.get(key), (int, float)) or run[key] <= 0:
                problems.append(f"run c={run.get('concurrency')}: {key} is {run.get(key)!r}")
        if run.get("exit_code") not in (0, 1):
            problems.append(f"run c={run.get('concurrency')}: exit code {run.get('exit_code')}")
        if not run.get("requests_by_action"):
            problems.append(f"run c={run.get('concurrency')}: no calls by action")
        if run.get("standin") == "replay" and run["standin_stats"]["misses"]:
            problems.append(f"run c={run.get('concurrency')}: replay misses")
    eq = data.get("replay_equals_moto")
    if data["standin"].get("used") == "replay" and not (eq and eq.get("equal")):
        problems.append(f"replayed report differs from moto's: {eq}")
    serve = data["serve"]
    if not (serve.get("startup") or {}).get("median_ms"):
        problems.append("no start-up time")
    if not serve.get("idle_rss_kib"):
        problems.append("no idle RSS")
    if (serve.get("audit") or {}).get("status") != 200:
        problems.append("audit through serve did not answer 200")
    if len(data["targets"]) != len(TARGETS):
        problems.append("targets incomplete")
    return problems


# --------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", type=Path, help="only check that FILE is a well-formed results document")
    p.add_argument("--smoke", action="store_true", help="small account, 2 ms, concurrency 8, short wrk, no load wait")
    p.add_argument("--binary", default=str(ROOT / "target" / "release" / "dspm-audit"))
    p.add_argument("--size", choices=("small", "large"), default="large")
    p.add_argument("--delay-ms", type=float, default=30.0)
    p.add_argument("--concurrency", default="4 8 16 32", help="space- or comma-separated DSPM_AWS_CONCURRENCY values")
    p.add_argument("--repeat", type=int, default=1, help="timed scans per concurrency value")
    p.add_argument("--standin", choices=("auto", "moto", "replay"), default="auto")
    p.add_argument("--out", type=Path, default=BENCH / "results.json")
    p.add_argument("--max-load", type=float, default=1.5)
    p.add_argument("--load-wait", type=float, default=120.0, help="longest wait for the load to drop, per figure")
    p.add_argument("--wrk-connections", type=int, default=64)
    p.add_argument("--wrk-seconds", type=int, default=10)
    p.add_argument("--capacity-seconds", type=int, default=5)
    p.add_argument("--startup-runs", type=int, default=10)
    p.add_argument("--scan-timeout", type=float, default=900.0)
    p.add_argument("--budget", type=float, default=3300.0, help="seconds the whole run may take")
    p.add_argument("--keep", action="store_true", help="keep the work directory (reports, logs, recording)")
    p.add_argument("--memory-breakdown", action="store_true",
                   help="only measure where peak memory goes; merged into --out as `memory_breakdown`")
    p.add_argument("--memory-delay-ms", type=float, default=5.0)
    args = p.parse_args(argv)
    if args.smoke:
        args.size, args.delay_ms, args.concurrency = "small", 2.0, "8"
        args.load_wait, args.wrk_seconds, args.wrk_connections = 0.0, 2, 16
        args.capacity_seconds, args.startup_runs, args.budget = 1, 3, 540.0
    args.concurrency = [int(c) for c in re.split(r"[,\s]+", str(args.concurrency).strip()) if c]
    if not args.concurrency or min(args.concurrency) < 1:
        p.error("--concurrency needs positive integers")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.check:
        problems = check(args.check)
        for problem in problems:
            print(f"bench check: {args.check}: {problem}", file=sys.stderr)
        print(f"bench check: {args.check}: {'well-formed' if not problems else 'NOT well-formed'}")
        return 1 if problems else 0
    if not os.access(GNU_TIME, os.X_OK):
        print(f"bench: {GNU_TIME} (GNU time, Debian package `time`) is needed", file=sys.stderr)
        return 2
    if not os.access(args.binary, os.X_OK):
        print(f"bench: {args.binary} is not an executable (cargo build --release)", file=sys.stderr)
        return 2

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    procs = Processes()
    work = Path(tempfile.mkdtemp(prefix="dspm-bench-"))
    ok = False
    try:
        if args.memory_breakdown:
            breakdown = memory_breakdown(args, procs, work)
            results = json.loads(args.out.read_text()) if args.out.exists() else {}
            results["memory_breakdown"] = breakdown
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")
            print(f"bench: merged memory_breakdown into {args.out}")
            ok = True
            return 0
        results = benchmark(args, procs, work)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(markdown_table(results))
        print(f"bench: wrote {args.out}")
        ok = True
    except BenchError as err:
        print(f"bench: error: {err} (work directory {work})", file=sys.stderr)
    finally:
        procs.stop_all()
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif not ok or args.keep:
            print(f"bench: work directory kept: {work}", file=sys.stderr)
    if ok and args.smoke:
        problems = check(args.out)
        for problem in problems:
            print(f"bench smoke: {problem}", file=sys.stderr)
        return 1 if problems else 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
