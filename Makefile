# Tessera: the two commands a new user needs are `make demo` and `make test`.
# Every target installs what is missing first (scripts/setup.sh is idempotent and quick when
# everything is there).

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PG_BINDIR := $(shell $(PG_CONFIG) --bindir 2>/dev/null)
PG_REGRESS := $(shell $(PG_CONFIG) --pkglibdir 2>/dev/null)/pgxs/src/test/regress/pg_regress
export PATH := $(HOME)/.cargo/bin:$(PATH)
export PG_CONFIG

# The demo cluster and the test cluster use different ports and directories, so tests never
# touch a cluster a user is playing with.
DEMO_PORT ?= 9700
TEST_PORT ?= 9800
TEST_CLUSTER_DIR ?= /var/tmp/tessera/test-cluster
PGRX_TEST_DIR ?= /var/tmp/tessera/pgrx-test

TEST_ENV = TESSERA_PORT=$(TEST_PORT) TESSERA_CLUSTER_DIR=$(TEST_CLUSTER_DIR) TESSERA_WORKERS=4 \
	TESSERA_RECOVERY_INTERVAL=-1

.PHONY: setup build install cluster-up cluster-down cluster-status demo test test-unit \
	test-pgrx test-cluster-up test-regress test-integration test-fuzz test-cluster-down bench lint fmt

setup:
	@bash scripts/setup.sh

build: setup
	cargo build

install: setup
	@bash scripts/install.sh

# The demo cluster is disposable: rebuilt when the installed Tessera SQL changed.
cluster-up: install
	@TESSERA_PORT=$(DEMO_PORT) TESSERA_RECREATE_STALE=1 bash scripts/cluster.sh start

cluster-down:
	@TESSERA_PORT=$(DEMO_PORT) bash scripts/cluster.sh stop

cluster-status:
	@TESSERA_PORT=$(DEMO_PORT) bash scripts/cluster.sh status

demo: cluster-up
	@TESSERA_PORT=$(DEMO_PORT) bash demo/run.sh

# Every test layer, in order: plain Rust, pgrx (single server), pg_regress against a live
# 1+4 cluster, Rust integration tests and random queries (SQLsmith) against the same cluster.
# Every layer runs even when an earlier one failed (-k); the last line sums every layer's
# tests ("N passed, M failed") and its status is make test's.
TEST_RUN = bash scripts/test-summary.sh run $(MAKE) --no-print-directory -k
test: setup
	@bash scripts/test-summary.sh begin
	@$(TEST_RUN) lint test-unit test-pgrx install test-cluster-up; \
	$(TEST_RUN) test-regress test-integration test-fuzz; \
	$(MAKE) --no-print-directory test-cluster-down; \
	bash scripts/test-summary.sh end

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

fmt:
	cargo fmt --all

test-unit:
	cargo test -p tessera-core

# cargo pgrx test installs a debug build into PostgreSQL's directories with a plain copy; move
# the installed library aside first so servers that have it mapped keep their (renamed) file.
test-pgrx:
	@lib=$$($(PG_CONFIG) --pkglibdir)/tessera.so; if [ -f $$lib ]; then mv -f $$lib $$lib.replaced; fi
	mkdir -p $(PGRX_TEST_DIR) && chown postgres $(PGRX_TEST_DIR) $$(dirname $(PGRX_TEST_DIR))
	USER=$${USER:-root} cargo pgrx test pg15 --runas postgres --pgdata $(PGRX_TEST_DIR)/data

test-cluster-up:
	@$(TEST_ENV) bash scripts/cluster.sh destroy >/dev/null
	@$(TEST_ENV) bash scripts/cluster.sh start

test-cluster-down:
	@$(TEST_ENV) bash scripts/cluster.sh destroy >/dev/null

test-regress:
	@rm -rf pg_test/results && mkdir -p pg_test/results
	env -u RUST_BACKTRACE $(PG_REGRESS) --bindir=$(PG_BINDIR) --host=127.0.0.1 --port=$(TEST_PORT) \
		--user=postgres --use-existing --dbname=postgres --inputdir=pg_test --outputdir=pg_test \
		--schedule=pg_test/schedule || { cat pg_test/regression.diffs 2>/dev/null | head -200; exit 1; }

test-integration:
	$(TEST_ENV) cargo test -p tessera-integration --no-fail-fast -- --test-threads=1

test-fuzz:
	@$(TEST_ENV) bash scripts/fuzz.sh

bench: install
	@bash bench/run.sh
	@bash bench/queries.sh
	@bash bench/schemas.sh
	@bash bench/writes.sh
	@bash bench/ann.sh
