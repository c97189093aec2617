# Fuzzing: cargo-fuzz (libFuzzer) targets for everything read from outside,
# AWS answers, policy documents, the credential report and the API's HTTP
# requests. Included by the top Makefile. fuzz/README.md explains.
#
#   make fuzz                       every target for FUZZ_SECONDS each
#   make fuzz FUZZ_TARGETS="timestamp codec" FUZZ_SECONDS=10
#
# Each target runs for a bounded time (-max_total_time) and stops by itself;
# a per-input timeout turns a hang into a reported crash. The corpus grows
# in fuzz/corpus/<target> (gitignored), seeded from fuzz/seeds/<target>;
# crashing inputs land in fuzz/artifacts/<target>. The run prints, per
# target, the executions and the crashes, and fails if any target crashed.

.PHONY: fuzz fuzz-build fuzz-tools

FUZZ_SECONDS ?= 30
FUZZ_TOOLCHAIN ?= nightly
FUZZ_DIR := fuzz
# Seconds one input may take before it counts as a hang.
FUZZ_INPUT_TIMEOUT ?= 10
FUZZ_TARGETS ?= $(sort $(basename $(notdir $(wildcard $(FUZZ_DIR)/fuzz_targets/*.rs))))
FUZZ_CARGO := $(CARGO) +$(FUZZ_TOOLCHAIN) fuzz
FUZZ_LOGS := $(FUZZ_DIR)/artifacts/logs

## fuzz-tools: cargo-fuzz, installed from crates.io when missing.
fuzz-tools:
	@$(CARGO) +$(FUZZ_TOOLCHAIN) --version >/dev/null 2>&1 || \
	  { echo "fuzz: the $(FUZZ_TOOLCHAIN) toolchain is needed (rustup toolchain install $(FUZZ_TOOLCHAIN))"; exit 1; }
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz

## fuzz-build: every target, with debug assertions and overflow checks
## (cargo-fuzz's default; not -O, which would turn them off).
fuzz-build: fuzz-tools
	@for t in $(FUZZ_TARGETS); do \
	  echo "$(FUZZ_CARGO) build --fuzz-dir $(FUZZ_DIR) $$t"; \
	  $(FUZZ_CARGO) build --fuzz-dir $(FUZZ_DIR) $$t || exit 1; \
	done

## fuzz: each target for FUZZ_SECONDS, then a per-target summary.
fuzz: fuzz-build
	@mkdir -p $(FUZZ_LOGS)
	@set -u; failed=0; summary=""; \
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/artifacts/$$t; \
	  if [ -d $(FUZZ_DIR)/seeds/$$t ]; then cp -n $(FUZZ_DIR)/seeds/$$t/* $(FUZZ_DIR)/corpus/$$t/ 2>/dev/null || true; fi; \
	  before=$$(ls $(FUZZ_DIR)/artifacts/$$t | wc -l); \
	  log=$(FUZZ_LOGS)/$$t.log; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_CARGO) run --fuzz-dir $(FUZZ_DIR) $$t $(FUZZ_DIR)/corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=$(FUZZ_INPUT_TIMEOUT) \
	    -print_final_stats=1 >$$log 2>&1; rc=$$?; \
	  runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log | tail -n1); \
	  [ -n "$$runs" ] || runs=$$(sed -n 's/^#\([0-9]*\)\t.*/\1/p' $$log | tail -n1); \
	  crashes=$$(( $$(ls $(FUZZ_DIR)/artifacts/$$t | wc -l) - before )); \
	  if [ $$rc -ne 0 ] && [ $$crashes -eq 0 ]; then crashes="? (exit $$rc, see $$log)"; fi; \
	  if [ $$rc -ne 0 ]; then failed=1; grep -m3 -E 'panicked|ERROR: libFuzzer|SUMMARY' $$log; fi; \
	  summary="$$summary$$(printf '%-24s %4s s %12s executions   crashes: %s' $$t $(FUZZ_SECONDS) "$${runs:-0}" "$$crashes")\n"; \
	done; \
	echo; echo "fuzz summary (logs in $(FUZZ_LOGS), crashing inputs in $(FUZZ_DIR)/artifacts/<target>):"; \
	printf "$$summary"; \
	exit $$failed
