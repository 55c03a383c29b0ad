# parpulse: two commands on a fresh machine.
#   make demo   local services up, a simulated province through the pipeline, KPIs on screen and /metrics
#   make test   local services up, every test (unit, integration, end to end)
# Services (Kafka KRaft, ClickHouse) run on loopback with data under .parpulse/ (see deploy/local/).

SHELL := /bin/bash
CARGO ?= cargo
DEMO_ARGS ?=

.PHONY: all build up down status install install-test demo test test-unit bench bench-period chaos mutants lint fmt clean clean-data
BENCH_ARGS ?=

all: build

install:
	deploy/local/install.sh

# The tools only the tests use (Prometheus, promtool, amtool, Chromium, openssl, chDB).
install-test:
	deploy/local/install.sh --test

build: install
	$(CARGO) build --workspace --all-targets

# CLUSTER=1: also the local cluster (3 Kafka nodes, ClickHouse 2 shards x 2 replicas, ZooKeeper;
# deploy/local/cluster.sh, docs/OPERATIONS.md "Local cluster"); `down` and `status` always include it.
up:
	deploy/local/up.sh
	@if [[ "$(CLUSTER)" == 1 ]]; then deploy/local/cluster.sh start; fi

down:
	deploy/local/down.sh
	deploy/local/cluster.sh stop

status:
	@deploy/local/status.sh
	@deploy/local/cluster.sh status

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

# Closed-period reports on 2M synthetic dossiers (docs/BENCHMARKS.md, "Period reports").
bench-period: up
	$(CARGO) build --release -p parpulse
	crates/parpulse-bench/scripts/period_report.sh

# Reliability at full size (docs/RELIABILITY.md), release build: the chaos run (1M events through
# two aggregators, 20 kill -9, a Kafka and a ClickHouse restart, poison in the dossier topic)
# and 100,000 fuzzed intake requests; `make test` runs both reduced. Figures in target/chaos/.
chaos: up
	$(CARGO) build --release -p parpulse
	mkdir -p target/chaos
	PARPULSE_BIN=$(CURDIR)/target/release/parpulse PARPULSE_CHAOS_EVENTS=$${PARPULSE_CHAOS_EVENTS:-1000000} PARPULSE_CHAOS_KILLS=$${PARPULSE_CHAOS_KILLS:-20} \
	  PARPULSE_CHAOS_OUTAGE_SECS=$${PARPULSE_CHAOS_OUTAGE_SECS:-10} PARPULSE_CHAOS_FIGURES=$(CURDIR)/target/chaos/chaos.json \
	  $(CARGO) test --release -p parpulse-tests --test e2e_chaos -- --nocapture
	PARPULSE_BIN=$(CURDIR)/target/release/parpulse PARPULSE_FUZZ_REQUESTS=$${PARPULSE_FUZZ_REQUESTS:-100000} \
	  PARPULSE_FUZZ_FIGURES=$(CURDIR)/target/chaos/intake_fuzz.json \
	  $(CARGO) test --release -p parpulse-tests --test e2e_intake_fuzz -- --nocapture

# Mutation testing (docs/TESTING.md), never part of `make test`: cargo-mutants (pinned) on
# parpulse-core's rule modules, one job (2 shared cores), copying the tree without what
# .gitignore excludes (.parpulse/, target/: several GB); the report goes to target/mutants/.
MUTANTS_VERSION := 27.1.0
MUTANTS_FILES ?= lifecycle kpi decision766 validate time calendar
mutants:
	@cargo mutants --version 2>/dev/null | grep -qx 'cargo-mutants $(MUTANTS_VERSION)' \
	  || $(CARGO) install cargo-mutants --version $(MUTANTS_VERSION) --locked
	$(CARGO) mutants -p parpulse-core -j 1 --gitignore=true -o target/mutants $(foreach m,$(MUTANTS_FILES),--file crates/parpulse-core/src/$(m).rs)

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
