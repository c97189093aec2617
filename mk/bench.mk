# Benchmarks: how fast, how lean, how close to the limit (bench/, BENCHMARKS.md).
# Included by the top Makefile.
#
#   make bench                         large account, 30 ms per AWS call,
#                                      DSPM_AWS_CONCURRENCY 4 8 16 32
#   make bench SIZE=small DELAY_MS=10 CONCURRENCY="8 16"
#   make bench-memory                  where the peak memory goes (collect vs report,
#                                      glibc arenas, static musl, serve); merged
#                                      into $(BENCH_OUT) as memory_breakdown
#   make bench-smoke                   small account, 2 ms, concurrency 8; asserts
#                                      only that it completes and writes a
#                                      well-formed results document
#
# Everything runs on 127.0.0.1: moto (the pinned one in .venv), the latency
# proxy / replay server (bench/standin.py) and the product. bench/run.py
# stops every process it started, by PID, on every exit; each step has a
# timeout and the whole run a budget, and `timeout` bounds it once more.
# Timed runs wait (at most BENCH_LOAD_WAIT s) for the 1-minute load to drop
# below 1.5 and record the load next to each figure.

.PHONY: bench bench-memory bench-smoke bench-tools

SIZE ?= large
DELAY_MS ?= 30
CONCURRENCY ?= 4 8 16 32
BENCH_REPEAT ?= 1
BENCH_LOAD_WAIT ?= 120
BENCH_TIMEOUT ?= 3600
BENCH_OUT ?= bench/results.json
# More bench/run.py options, e.g. BENCH_ARGS="--keep" to keep the work directory.
BENCH_ARGS ?=
BENCH_TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
BENCH_SMOKE_OUT ?= $(BENCH_TARGET_DIR)/bench-smoke/results.json

## bench-tools: wrk and GNU time (Debian), installed when missing.
bench-tools:
	@command -v wrk >/dev/null 2>&1 && test -x /usr/bin/time || { \
	  echo "bench: installing wrk and time (Debian)"; \
	  apt-get install -y -qq wrk time >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq wrk time >/dev/null; }; }

## bench: the full benchmark, release build; writes $(BENCH_OUT).
bench: venv bench-tools
	$(CARGO) build --release
	timeout --kill-after=30 $(BENCH_TIMEOUT) $(PY) bench/run.py \
	  --binary $(BENCH_TARGET_DIR)/release/dspm-audit --size $(SIZE) --delay-ms $(DELAY_MS) \
	  --concurrency "$(CONCURRENCY)" --repeat $(BENCH_REPEAT) --load-wait $(BENCH_LOAD_WAIT) \
	  --budget $$(( $(BENCH_TIMEOUT) - 120 )) --out $(BENCH_OUT) $(BENCH_ARGS)

## bench-memory: peak RSS by phase and allocator, against a replay at 5 ms.
bench-memory: venv bench-tools
	$(CARGO) build --release
	timeout --kill-after=30 1800 $(PY) bench/run.py --memory-breakdown \
	  --binary $(BENCH_TARGET_DIR)/release/dspm-audit --size $(SIZE) --out $(BENCH_OUT) $(BENCH_ARGS)

## bench-smoke: the harness end to end on the small account with a 2 ms
## delay, on the debug build that `cargo test` already made; no timing is
## asserted. wrk figures are skipped (null) when wrk is not installed.
bench-smoke: venv
	$(CARGO) build
	@test -x /usr/bin/time || $(MAKE) --no-print-directory bench-tools
	timeout --kill-after=30 600 $(PY) bench/run.py --smoke \
	  --binary $(BENCH_TARGET_DIR)/debug/dspm-audit --out $(BENCH_SMOKE_OUT)
