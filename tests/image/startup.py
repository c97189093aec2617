"""Time from process start to the first `GET /health` 200, and idle RSS.

Starts BINARY `serve --demo` on a free 127.0.0.1 port RUNS times. Each run
polls /health in a tight loop (raw socket, no sleep) from just before the
exec, then reads VmRSS from /proc/PID/status right after the first 200 and
again after IDLE seconds. Prints one line per figure; asserts nothing.

    python3 tests/image/startup.py BINARY [RUNS] [IDLE]
"""

import os
import socket
import statistics
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_ok(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def one_run(binary, idle):
    port = free_port()
    env = {"DSPM_LISTEN": f"127.0.0.1:{port}", "PATH": "/usr/bin:/bin"}
    start = time.perf_counter()
    proc = subprocess.Popen([binary, "serve", "--demo"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = start + 10
        while not health_ok(port):
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            if time.perf_counter() > deadline:
                raise RuntimeError("no 200 on /health within 10 s")
        ready_ms = (time.perf_counter() - start) * 1000
        rss_ready = rss_kib(proc.pid)
        time.sleep(idle)
        rss_idle = rss_kib(proc.pid)
        return ready_ms, rss_ready, rss_idle
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    binary = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    idle = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    results = [one_run(binary, idle if i == 0 else 0.0) for i in range(runs)]
    ready = [r[0] for r in results]
    print(f"startup_ms_median {statistics.median(ready):.1f}")
    print(f"startup_ms_min {min(ready):.1f}")
    print(f"startup_ms_max {max(ready):.1f}")
    print(f"rss_kib_at_ready {results[0][1]}")
    print(f"rss_kib_idle {results[0][2]}")


if __name__ == "__main__":
    main()
