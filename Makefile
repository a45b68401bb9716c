# One entry point for people and CI. Every target installs what it needs first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
# Trust the platform's certificate store too (machines behind a TLS proxy with their own CA).
export UV_SYSTEM_CERTS ?= 1

# Label Studio deployments the benchmark measures: runserver (label-studio start, SQLite) and
# postgres (gunicorn + PostgreSQL, needs PostgreSQL's server binaries).
LABELSTUDIO_SERVERS ?= runserver postgres
# Figures in the image, video and volume projects the Supervisely benchmark measures.
SUPERVISELY_FIGURES ?= 100000
SUPERVISELY_VIDEO_FIGURES ?= 20000
SUPERVISELY_VOLUME_FIGURES ?= 10000

.PHONY: help bootstrap demo test test-fast check lint typecheck contracts format bench bench-labelstudio bench-supervisely deploy up down status

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

bootstrap:  ## install uv when missing, then the locked environment
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet

demo: bootstrap  ## capture, version, diff and restore a project on a local folder store
	$(UV) run python -m demo.run

test: bootstrap  ## the import contracts, then every suite (real S3, Label Studio, Prefect, Supervisely SDK)
	$(UV) run lint-imports
	$(UV) run pytest -m "" -p no:cacheprovider

test-fast: bootstrap  ## the offline suite only
	$(UV) run pytest -m "not s3 and not labelstudio and not prefect_server and not supervisely_sdk and not slow"

lint: bootstrap  ## ruff lint and format check
	$(UV) run ruff check .
	$(UV) run ruff format --check .

typecheck: bootstrap  ## mypy --strict on the library, the flows, tasks and deployments
	$(UV) run mypy labelvault flows tasks deployments

contracts: bootstrap  ## the layering rules (import-linter contracts in pyproject.toml)
	$(UV) run lint-imports

check: lint typecheck contracts test-fast  ## lint + types + import contracts + the offline tests

format: bootstrap  ## apply ruff's fixes and formatting
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

deploy: bootstrap  ## prepare the Prefect server in PREFECT_API_URL and deploy prefect.yaml
	$(UV) run python -m deployments.setup

up: bootstrap  ## a local stack: Prefect server + UI, worker, webhook bridge, Label Studio + sample project
	$(UV) run python -m devstack up

down: bootstrap  ## stop what make up started (by the pid files in .stack/)
	$(UV) run python -m devstack down

status: bootstrap  ## whether make up's stack runs, and where
	@$(UV) run python -m devstack status

bench: bootstrap  ## the format's benchmark table (write/read/size/memory/re-version/diff)
	$(UV) run python benchmarks/format.py

bench-labelstudio: bootstrap  ## capture and restore vs Label Studio's own export and import
	$(UV) run python benchmarks/labelstudio.py --server $(LABELSTUDIO_SERVERS)

bench-supervisely: bootstrap  ## capture and restore vs the Supervisely SDK's version create and restore
	$(UV) run python benchmarks/supervisely.py --figures $(SUPERVISELY_FIGURES) \
		--video-figures $(SUPERVISELY_VIDEO_FIGURES) --volume-figures $(SUPERVISELY_VOLUME_FIGURES)
