#!/usr/bin/env python3
"""Peak memory of dspm-audit audits, to size Kubernetes requests/limits and
the Fargate task (deploy/README.md, "Sizing"). Prints one line per figure;
asserts nothing about the numbers.

    .venv/bin/python tests/deploy/measure_memory.py BINARY [--buckets N] [--users N]

Figures (peak RSS: GNU time's maximum resident set size for one-shot
runs, the kernel's VmHWM for the server):
  1. `scan --demo` (embedded demo account);
  2. `scan` of the account that tests/moto/seed.py seeds (10 buckets, 6 users);
  3. `scan` of a large synthetic account in moto (N buckets with a policy,
     encryption, versioning and logging each; N users with an access key and
     an attached policy each; N/4 customer-managed policies);
  4. `serve` of that large account with two audits at once (the server's
     default DSPM_MAX_CONCURRENT_AUDITS), peak RSS of the server process.

moto runs on a free 127.0.0.1 port, started and stopped here; every AWS call
of the product and of boto3 goes to it and nowhere else. moto's auth is off,
so the product runs with dummy temporary keys (memory does not depend on it).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "moto"))
import seed  # noqa: E402  (tests/moto/seed.py: loopback-only boto3 clients)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310 (loopback)
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"measure: {url} did not answer 200 within {seconds} s")
        time.sleep(0.05)


def peak_rss_of_run(argv: list[str], env: dict[str, str]) -> tuple[int, int, float]:
    """(exit code, peak RSS in KiB, seconds) of one run, measured by GNU time
    (its maxrss is the binary's own: time is a small C program, so the
    high-water mark a forked Python would leave behind does not count)."""
    with tempfile.NamedTemporaryFile(prefix="rss-", suffix=".txt") as out:
        started = time.monotonic()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", out.name, *argv],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
        )
        elapsed = time.monotonic() - started
        if proc.returncode not in (0, 1):
            raise SystemExit(f"measure: {' '.join(argv)} exited {proc.returncode}:\n"
                             f"{proc.stderr.decode(errors='replace')[-2000:]}")
        kib = int(Path(out.name).read_text().split()[-1])
    return proc.returncode, kib, elapsed


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise SystemExit(f"measure: no VmHWM for {pid}")


def mb(kib: int) -> str:
    return f"{kib * 1024 / 1e6:.1f} MB"


def seed_large(moto: seed.Moto, buckets: int, users: int) -> None:
    s3 = moto.client("s3")
    iam = moto.client("iam")

    def one_bucket(i: int) -> None:
        name = f"scale-{i:05d}"
        s3.create_bucket(Bucket=name)
        s3.put_bucket_policy(Bucket=name, Policy=json.dumps(seed.tls_only_policy(name)))
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})

    policy_arns = []
    for i in range(max(1, users // 4)):
        doc = seed.policy_doc(
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": f"arn:aws:s3:::scale-{i:05d}/*"}
        )
        arn = iam.create_policy(PolicyName=f"scale-policy-{i:05d}", PolicyDocument=json.dumps(doc))["Policy"]["Arn"]
        policy_arns.append(arn)

    def one_user(i: int) -> None:
        name = f"scale-user-{i:05d}"
        iam.create_user(UserName=name)
        iam.create_access_key(UserName=name)
        iam.attach_user_policy(UserName=name, PolicyArn=policy_arns[i % len(policy_arns)])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one_bucket, range(buckets)))
        list(pool.map(one_user, range(users)))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--buckets", type=int, default=2000)
    parser.add_argument("--users", type=int, default=1000)
    args = parser.parse_args()
    binary = str(Path(args.binary).resolve())
    venv_bin = Path(sys.executable).parent
    seed.sanitize_environment()

    base_env = {"PATH": "/usr/bin:/bin", "RUST_LOG": "warn"}
    print(f"measure: {binary} ({os.cpu_count()} cores)")

    code, kib, secs = peak_rss_of_run([binary, "scan", "--demo", "--format", "json"], base_env)
    print(f"scan --demo                          peak RSS {mb(kib):>9}  ({secs:.2f} s)")

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile(prefix="moto-measure-", suffix=".log", delete=False)
    moto_proc = subprocess.Popen(
        [str(venv_bin / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    server = None
    try:
        wait_http(f"{endpoint}/moto-api/", 30)
        moto = seed.Moto(endpoint)
        aws_env = dict(
            base_env,
            AWS_REGION="us-east-1",
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_SESSION_TOKEN="testing",
            DSPM_AWS_RETRY_BASE_MS="20",
        )

        seed.cmd_seed(moto, argparse.Namespace())
        code, kib, secs = peak_rss_of_run([binary, "scan", "--format", "json"], aws_env)
        print(f"scan, seeded account (10 buckets)    peak RSS {mb(kib):>9}  ({secs:.2f} s)")

        moto.moto_api("/moto-api/reset")
        started = time.monotonic()
        seed_large(moto, args.buckets, args.users)
        print(f"seeded {args.buckets} buckets, {args.users} users, {max(1, args.users // 4)} policies "
              f"in {time.monotonic() - started:.0f} s")
        code, kib, secs = peak_rss_of_run([binary, "scan", "--format", "json"], aws_env)
        print(f"scan, {args.buckets} buckets / {args.users} users   peak RSS {mb(kib):>9}  ({secs:.1f} s)")

        listen_port = free_port()
        server = subprocess.Popen(
            [binary, "serve"],
            env=dict(aws_env, DSPM_LISTEN=f"127.0.0.1:{listen_port}"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_http(f"http://127.0.0.1:{listen_port}/health", 10)
        idle = vm_hwm_kib(server.pid)

        def audit(_: int) -> int:
            url = f"http://127.0.0.1:{listen_port}/v1/audit"
            with urllib.request.urlopen(url, timeout=600) as r:  # noqa: S310 (loopback)
                return len(r.read())

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            sizes = list(pool.map(audit, range(2)))
        print(f"serve, 2 audits at once              peak RSS {mb(vm_hwm_kib(server.pid)):>9}  "
              f"({time.monotonic() - started:.1f} s; idle {mb(idle)}; report {sizes[0] / 1e6:.1f} MB each)")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        moto_proc.terminate()
        try:
            moto_proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            moto_proc.kill()
            moto_proc.wait()
        os.unlink(log.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
