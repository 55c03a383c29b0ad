# parpulse: two commands on a fresh machine.
#   make demo   local services up, a simulated province through the pipeline, KPIs on screen and /metrics
#   make test   local services up, every test (unit, integration, end to end)
# Services (Kafka KRaft, ClickHouse) run on loopback with data under .parpulse/ (see deploy/local/).

SHELL := /bin/bash
CARGO ?= cargo
DEMO_ARGS ?=

.PHONY: all build up down status install install-test demo test test-unit bench lint fmt clean clean-data
BENCH_ARGS ?=

all: build

install:
	deploy/local/install.sh

# The tools only the tests use (Prometheus, promtool, amtool, Chromium, openssl, chDB).
install-test:
	deploy/local/install.sh --test

build: install
	$(CARGO) build --workspace --all-targets

up:
	deploy/local/up.sh

down:
	deploy/local/down.sh

status:
	@deploy/local/status.sh

# The demo database is emptied and new topics are used on every run (--fresh), so the
# numbers on screen are those of this run's simulated province.
demo: up
	$(CARGO) build -p parpulse
	PARPULSE_CLICKHOUSE_DATABASE=$${PARPULSE_CLICKHOUSE_DATABASE:-parpulse_demo} \
	  target/debug/parpulse demo --fresh $(DEMO_ARGS)

# Unit tests need no services; integration and end-to-end tests need the ones `up` starts,
# and fail (never skip) when they are unreachable.
test: install-test up
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace --no-fail-fast

# Benchmarks (docs/BENCHMARKS.md): release build, the local services, parpulse side by side
# with a bare librdkafka consumer/producer and ClickHouse's Kafka engine on the same events;
# the table goes to target/bench/report.md, Criterion's micro-benchmarks to target/bench/hot_paths.txt.
# Never part of `make test`: timings are measured here, not asserted.
bench: up
	$(CARGO) build --release -p parpulse -p parpulse-bench
	target/release/parpulse-bench $(BENCH_ARGS)
	$(CARGO) bench -p parpulse-bench --bench hot_paths -- --warm-up-time 1 --measurement-time 3 \
	  | tee target/bench/hot_paths.txt

test-unit: install
	$(CARGO) test --workspace --lib --bins

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean

clean-data: down
	rm -rf .parpulse
