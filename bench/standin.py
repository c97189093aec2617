#!/usr/bin/env python3
"""The AWS stand-in's front for the benchmarks: a loopback HTTP/1.1 server that
answers every request after a fixed delay, either by forwarding it to moto
(`proxy`, optionally recording the answers) or from a recording (`replay`).

    standin.py proxy  --upstream http://127.0.0.1:PORT --delay-ms 30 [--record FILE]
    standin.py replay --recording FILE --delay-ms 30

It listens on 127.0.0.1 only (a free port unless --port), prints
`READY <port>` on stdout once listening, and runs until SIGTERM/SIGINT.
The upstream must be a loopback address. Written with asyncio (one event
loop, standard library only): a request costs a few tens of microseconds of
CPU, and a thousand requests sleeping their delay at once cost nothing, so
the stand-in answers far faster than the product asks (measured by
`bench/run.py`, see BENCHMARKS.md).

Timing: the answer leaves `delay` after the request was read whole; in proxy
mode moto's own time comes on top (the request is forwarded first).

Recording key: method, path and query, the SHA-256 of the body, and the
headers that select the operation (x-amz-target, x-amz-account-id). Nothing
that differs per attempt (Authorization, X-Amz-Date, the security token) is
part of it. A key answered differently over time (GenerateCredentialReport:
STARTED, then COMPLETE) keeps the sequence; replay walks it per key and then
repeats the last answer. `POST /__bench/reset` rewinds that walk.

Control routes (answered at once, never forwarded or recorded):
    GET  /__bench/stats   counters and service-time percentiles (JSON)
    POST /__bench/reset   zero the counters, rewind replay, clear the recording
    POST /__bench/save    write the recording to --record FILE
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import signal
import sys
import time
from urllib.parse import urlsplit

# Response headers not replayed: hop-by-hop, framing, and per-answer values.
DROP_RESPONSE_HEADERS = {"connection", "content-length", "transfer-encoding", "date", "server", "keep-alive"}
KEY_HEADERS = ("x-amz-target", "x-amz-account-id")
MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024


def request_key(method: str, target: str, headers: dict[str, str], body: bytes) -> str:
    parts = [method, target]
    parts += [f"{h}={headers.get(h, '')}" for h in KEY_HEADERS]
    parts.append(hashlib.sha256(body).hexdigest())
    return "\n".join(parts)


def parse_head(raw: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = raw.decode("latin-1").split("\r\n")
    first = lines[0]
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return first, headers


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.connections = 0
        self.misses = 0
        self.upstream_errors = 0
        self.in_flight = 0
        self.in_flight_max = 0
        self.service_ms: list[float] = []
        self.started = time.monotonic()

    def snapshot(self) -> dict:
        times = sorted(self.service_ms)

        def pct(p: float) -> float | None:
            if not times:
                return None
            return round(times[min(len(times) - 1, int(p / 100 * len(times)))], 3)

        return {
            "requests": self.requests,
            "connections": self.connections,
            "misses": self.misses,
            "upstream_errors": self.upstream_errors,
            "in_flight_max": self.in_flight_max,
            "service_ms": {
                "mean": round(sum(times) / len(times), 3) if times else None,
                "p50": pct(50),
                "p99": pct(99),
                "max": round(times[-1], 3) if times else None,
            },
            "seconds": round(time.monotonic() - self.started, 3),
        }


class StandIn:
    def __init__(self, args: argparse.Namespace) -> None:
        self.delay = args.delay_ms / 1000.0
        self.mode = args.mode
        self.stats = Stats()
        self.record_path = getattr(args, "record", None)
        self.recording: dict[str, list[dict]] = {}
        self.replay: dict[str, list[dict]] = {}
        self.replay_pos: dict[str, int] = {}
        if self.mode == "proxy":
            up = urlsplit(args.upstream)
            if up.scheme != "http" or up.hostname not in ("127.0.0.1", "localhost", "::1") or not up.port:
                sys.exit(f"standin: --upstream must be http://127.0.0.1:PORT (got {args.upstream!r})")
            self.upstream = (up.hostname, up.port)
        else:
            with open(args.recording, encoding="utf-8") as f:
                data = json.load(f)
            self.replay = data["entries"]

    # -- serving -----------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                received = time.monotonic()
                first, headers = parse_head(raw[:-4])
                try:
                    method, target, version = first.split(" ", 2)
                except ValueError:
                    await self.send(writer, 400, [], b"bad request line", close=True)
                    return
                lower = {k.lower(): v for k, v in headers}
                if "chunked" in lower.get("transfer-encoding", "").lower():
                    await self.send(writer, 411, [], b"chunked bodies are not supported", close=True)
                    return
                length = int(lower.get("content-length", "0") or 0)
                if length > MAX_BODY:
                    await self.send(writer, 413, [], b"body too large", close=True)
                    return
                body = await reader.readexactly(length) if length else b""
                close = lower.get("connection", "").lower() == "close" or version == "HTTP/1.0"

                if target.startswith("/__bench/"):
                    status, body_out = self.control(method, target)
                    await self.send(writer, status, [("Content-Type", "application/json")], body_out, close)
                else:
                    self.stats.requests += 1
                    self.stats.in_flight += 1
                    self.stats.in_flight_max = max(self.stats.in_flight_max, self.stats.in_flight)
                    try:
                        status, reason, rheaders, rbody = await self.answer(method, target, headers, lower, body)
                        wait = self.delay - (time.monotonic() - received) if self.mode == "replay" else self.delay
                        if wait > 0:
                            await asyncio.sleep(wait)
                        await self.send(writer, status, rheaders, rbody, close, reason)
                        self.stats.service_ms.append((time.monotonic() - received) * 1000)
                    finally:
                        self.stats.in_flight -= 1
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def send(self, writer, status, headers, body, close, reason="") -> None:
        head = [f"HTTP/1.1 {status} {reason or 'X'}"]
        head += [f"{k}: {v}" for k, v in headers]
        head.append(f"Content-Length: {len(body)}")
        head.append("Connection: close" if close else "Connection: keep-alive")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()

    async def answer(self, method, target, headers, lower, body):
        key = request_key(method, target, lower, body)
        if self.mode == "replay":
            seq = self.replay.get(key)
            if not seq:
                self.stats.misses += 1
                return 500, "Replay Miss", [("Content-Type", "application/xml")], (
                    b"<Error><Code>BenchReplayMiss</Code><Message>not in the recording</Message></Error>"
                )
            i = self.replay_pos.get(key, 0)
            self.replay_pos[key] = i + 1
            entry = seq[min(i, len(seq) - 1)]
            return entry["status"], entry["reason"], entry["headers"], base64.b64decode(entry["body"])
        try:
            status, reason, rheaders, rbody = await self.forward(method, target, headers, body)
        except (OSError, asyncio.IncompleteReadError, ValueError) as err:
            self.stats.upstream_errors += 1
            return 502, "Bad Gateway", [("Content-Type", "text/plain")], f"upstream: {err}".encode()
        if self.record_path is not None:
            entry = {"status": status, "reason": reason, "headers": rheaders,
                     "body": base64.b64encode(rbody).decode("ascii")}
            seq = self.recording.setdefault(key, [])
            if not seq or seq[-1] != entry:
                seq.append(entry)
        return status, reason, rheaders, rbody

    async def forward(self, method, target, headers, body):
        reader, writer = await asyncio.open_connection(*self.upstream)
        try:
            head = [f"{method} {target} HTTP/1.1"]
            head += [f"{k}: {v}" for k, v in headers if k.lower() not in ("connection", "keep-alive")]
            head.append("Connection: close")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
            raw = await reader.readuntil(b"\r\n\r\n")
            first, rheaders = parse_head(raw[:-4])
            _, status, *reason = first.split(" ", 2)
            lower = {k.lower(): v for k, v in rheaders}
            if "content-length" in lower:
                rbody = await reader.readexactly(int(lower["content-length"]))
            elif "chunked" in lower.get("transfer-encoding", "").lower():
                rbody = await read_chunked(reader)
            else:
                rbody = await reader.read()
            kept = [[k, v] for k, v in rheaders if k.lower() not in DROP_RESPONSE_HEADERS]
            return int(status), (reason[0] if reason else ""), kept, rbody
        finally:
            writer.close()

    def control(self, method: str, target: str) -> tuple[int, bytes]:
        path = target.split("?", 1)[0]
        if path == "/__bench/stats" and method == "GET":
            return 200, json.dumps(self.stats.snapshot()).encode()
        if path == "/__bench/reset" and method == "POST":
            self.stats.reset()
            self.replay_pos.clear()
            self.recording.clear()
            return 200, b'{"reset": true}'
        if path == "/__bench/save" and method == "POST":
            if not self.record_path:
                return 409, b'{"error": "not recording (no --record)"}'
            with open(self.record_path, "w", encoding="utf-8") as f:
                json.dump({"version": 1, "key_headers": list(KEY_HEADERS), "entries": self.recording}, f)
            return 200, json.dumps({"saved": self.record_path, "keys": len(self.recording)}).encode()
        return 404, b'{"error": "unknown control route"}'


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            await reader.readline()
            return bytes(out)
        out += await reader.readexactly(size)
        await reader.readline()


async def main_async(args: argparse.Namespace) -> None:
    standin = StandIn(args)
    server = await asyncio.start_server(standin.handle, "127.0.0.1", args.port, limit=MAX_HEAD, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    proxy = sub.add_parser("proxy")
    proxy.add_argument("--upstream", required=True)
    proxy.add_argument("--record", help="recording file written by POST /__bench/save")
    replay = sub.add_parser("replay")
    replay.add_argument("--recording", required=True)
    for p in (proxy, replay):
        p.add_argument("--delay-ms", type=float, default=30.0)
        p.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
