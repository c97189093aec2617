# dspm-audit: the two set-up commands are `make run` and `make test`.
# Everything a target needs is installed by the target itself.

SHELL := /bin/bash
CARGO ?= cargo
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test test-rust lint venv

## run: the audit API on 127.0.0.1:8103 (DSPM_LISTEN to change it), auditing
## the embedded demo inventory.
DSPM_LISTEN ?= 127.0.0.1:8103
run:
	$(CARGO) build --release
	@echo "dspm-audit on http://$(DSPM_LISTEN) (demo inventory). Try:"
	@echo "  curl -s localhost:8103/health"
	@echo "  curl -s 'localhost:8103/v1/audit?framework=cis-aws-3.0'"
	DSPM_LISTEN=$(DSPM_LISTEN) ./target/release/dspm-audit serve --demo

## venv: the pinned AWS stand-in (moto) and reference client (boto3).
venv: $(VENV)/.installed
$(VENV)/.installed: tests/moto/requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r tests/moto/requirements.txt
	touch $@

## test: install what the tests need, then run every test: lints, the Rust
## tests (unit, moto and stub integration), the supply-chain checks, the
## scratch image built and run with buildah (see mk/image.mk) and the deploy
## kit (see mk/deploy.mk) and a smoke run of the benchmark (mk/bench.mk).
test: venv lint test-rust audit hadolint image-test deploy-test bench-smoke

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

test-rust: venv
	DSPM_TEST_PYTHON=$(abspath $(PY)) $(CARGO) test --all-targets

-include mk/*.mk
