#!/usr/bin/env python3
"""Print BENCHMARKS.md's figure tables from a results document.

    python3 bench/tables.py [bench/results.json]

Standard library only. MB is 10^6 bytes (the kernel reports KiB).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def mb(kib: int | None) -> str:
    return "–" if kib is None else f"{kib * 1024 / 1e6:.1f}"


def headline_table(d: dict) -> str:
    runs = [r for r in d["runs"] if r["concurrency"] == d["parameters"]["default_concurrency"]]
    r = sorted(runs, key=lambda x: x["wall_s"])[len(runs) // 2]
    musl = d.get("static_musl_run")
    s = d["serve"]
    t = {x["name"]: x for x in d["targets"]}

    def met(name: str) -> str:
        x = t[name]
        if x["met"]:
            return "yes"
        over = x["measured"] - x["target"]
        return f"**no, +{over:.1f} (+{over / x['target'] * 100:.0f} %)**"

    st = s["startup"]
    idle, during = s.get("wrk_idle") or {}, s.get("wrk_during_audit") or {}
    b = d["binary"]
    rows = [
        ("wall time of a full audit", f"**{r['wall_s']:.2f} s**", "", ""),
        ("lower bound (model below)", f"{r['lower_bound']['seconds']:.2f} s", "", ""),
        ("ratio measured / lower bound", f"**{r['ratio']:.3f}**", "≤ 1.3", met("ratio_at_default_concurrency")),
        ("AWS calls per bucket", f"**{r['per_resource']['s3_calls_per_bucket']:.2f}**", "≤ 8",
         met("aws_calls_per_bucket")),
        ("redirects / retries", f"{r['redirects']} / {r['retries']}", "0", "yes" if r["redirects"] == 0 else "no"),
        ("peak RSS, `scan`, glibc release build", f"**{mb(r['peak_rss_kib'])} MB**", "≤ 40 MB", met("peak_rss_mb")),
    ]
    if musl:
        over = musl["peak_rss_kib"] * 1024 / 1e6 - 40
        rows.append(("peak RSS, `scan`, static musl build", f"{mb(musl['peak_rss_kib'])} MB", "≤ 40 MB",
                     "yes" if over <= 0 else f"**no, +{over:.1f} (+{over / 40 * 100:.0f} %)**"))
    rows += [
        ("peak RSS, `serve` during one audit (glibc)",
         f"{mb(s['peak_rss_kib'])} MB ({mb(s['rss_after_audit_kib'])} MB resident 2 s later)", "", ""),
        ("idle RSS, `serve`", f"**{mb(s['idle_rss_kib'])} MB**", "≤ 10 MB", met("idle_rss_mb")),
        (f"start-up to the first `/health` 200 (median of {st['runs']})",
         f"**{st['median_ms']:.1f} ms** (min {st['min_ms']:.1f}, max {st['max_ms']:.1f})", "≤ 50 ms", met("startup_ms")),
        ("`/health`, wrk 64 connections 10 s, idle",
         f"{idle.get('requests_per_s', 0):,.0f} req/s, p99 {idle.get('p99_ms')} ms", "", ""),
        ("`/health`, wrk 64 connections 10 s, **during an audit**",
         f"{during.get('requests_per_s', 0):,.0f} req/s, **p99 {during.get('p99_ms')} ms**", "≤ 10 ms",
         met("health_p99_during_audit_ms")),
        ("CPU time of `scan` per 1,000 AWS calls",
         f"{r['cpu_ms_per_1000_calls']:.0f} ms glibc" + (f", {musl['cpu_ms_per_1000_calls']:.0f} ms musl" if musl else ""),
         "", ""),
        ("binary size, release (glibc, stripped)", f"{b['release']['bytes'] / 1e6:.2f} MB", "", ""),
    ]
    if b.get("static_musl"):
        rows.append((f"binary size, static musl (as built {b['static_musl']['built']})",
                     f"{b['static_musl']['bytes'] / 1e6:.2f} MB", "", ""))
    out = ["| figure | measured | target | met |", "|---|---:|---:|---|"]
    out += [f"| {a} | {m} | {tg} | {mt} |" for a, m, tg, mt in rows]
    return "\n".join(out)


def sweep_table(d: dict) -> str:
    out = ["| `DSPM_AWS_CONCURRENCY` | load | wall s | lower bound s | ratio | peak RSS MB | CPU ms / 1000 calls "
           "| new TCP connections |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    default = d["parameters"]["default_concurrency"]
    rows = [(str(r["concurrency"]) + (" (default)" if r["concurrency"] == default else ""), r) for r in d["runs"]]
    if d.get("static_musl_run"):
        rows.append((f"{default}, static musl binary", d["static_musl_run"]))
    rows.append((f"{default}, moto behind the proxy", d["moto_run"]))
    for label, r in rows:
        out.append(f"| {label} | {r['load']['load1']:.2f} | {r['wall_s']:.2f} | {r['lower_bound']['seconds']:.2f} | "
                   f"{r['ratio']:.3f} | {mb(r['peak_rss_kib'])} | {r['cpu_ms_per_1000_calls']:.0f} | "
                   f"{r['standin_stats']['connections']:,} |")
    return "\n".join(out)


def memory_table(d: dict) -> str:
    m = d.get("memory_breakdown")
    if not m:
        return "(no memory_breakdown: run `make bench-memory`)"
    out = [f"commit {m.get('commit')}, {m['size']} account, replay at {m['delay_ms']} ms, concurrency "
           f"{m['concurrency']}, inventory {m['inventory_bytes'] / 1e6:.1f} MB", "",
           "| run | peak RSS MB | wall s | results |", "|---|---:|---:|---:|"]
    for r in m["runs"]:
        out.append(f"| {r['run']} | {mb(r['peak_rss_kib'])} | {r['wall_s']:.2f} | {r.get('results', '')} |")
    for r in m["serve"]:
        out.append(f"| {r['run']}, one `GET /v1/audit` (VmHWM; VmRSS 2 s later) | {mb(r['peak_rss_kib'])} "
                   f"({mb(r['rss_2s_after_kib'])} after) | | |")
    return "\n".join(out)


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("results.json"))
    d = json.loads(path.read_text())
    print(headline_table(d), "", sweep_table(d), "", memory_table(d), sep="\n")


if __name__ == "__main__":
    main()
