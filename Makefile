# dsm: every entry point a developer or CI needs. `make help` lists them.
CARGO ?= cargo
RELEASE := target/release
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
BINARIES := dsm-master dsm-slave dsm-client dsm-torture

.PHONY: help build install test lint fmt run-cluster bench scale mem attacks torture blinks elections failover-bench fsync-bench fuzz clean

help:
	@echo "make build        release binaries in $(RELEASE)/ (dsm-master, dsm-slave, dsm-client, dsm-torture)"
	@echo "make install      build, then copy them to \$$PREFIX/bin (PREFIX=$(PREFIX); DESTDIR=... to stage)"
	@echo "make run-cluster  a primary master (127.0.0.1:7000), a backup master (127.0.0.1:7002) and 3"
	@echo "                  slaves on loopback, data in ./dsm-data; Ctrl-C stops them all (status 0). Variables:"
	@echo "                    DSM_LISTEN DSM_HEARTBEAT DSM_BACKUP DSM_BACKUP_HEARTBEAT  the masters' addresses"
	@echo "                    DSM_SLAVES=3 DSM_REPLICAS=2  DSM_DATA=./dsm-data (kept)  DSM_LOGDIR (default:"
	@echo "                    a temporary folder, removed at the end)  DSM_SECRET_FILE=PATH (every node and"
	@echo "                    client must hold the secret)  DSM_SLAVE_ARGS / DSM_MASTER_ARGS (more flags)"
	@echo "                    DSM_METRICS_PORT=9100 (--metrics on loopback: the primary's status page at"
	@echo "                    http://127.0.0.1:9100/, the backup on +1, slave N on +1+N; 0: off)"
	@echo "make test         every unit, integration and fault test in the workspace (installs promtool"
	@echo "                  and chromium with apt-get if missing, for the --metrics tests)"
	@echo "make lint         clippy with -D warnings, and rustfmt --check"
	@echo "make bench        dsm vs redis on loopback (installs redis if missing); writes bench-results/latest.md"
	@echo "make scale        throughput and p99 of dsm beside redis against connections, value size and key"
	@echo "                  count, memory per key at 10M keys (long: ~30 min; SHORT=1 a quick pass); writes"
	@echo "                  bench-results/scale.md and scale.svg (SHORT=1: scale-short.*)"
	@echo "make mem          RSS per key of a master and 2 slaves at 1M keys (MEM_KEYS=N); writes bench-results/memory.md"
	@echo "make attacks      issue 18's memory and connection attacks on release binaries, with RSS and latency;"
	@echo "                  writes bench-results/attacks-bounds.md"
	@echo "make torture      long fault-injection run with a linearizability check: DURATION=s SEED=n CLIENTS=n"
	@echo "make fuzz         each cargo-fuzz target (fuzz/) for FUZZ_SECONDS=$(FUZZ_SECONDS) at nice 19, one after"
	@echo "                  another (needs a nightly toolchain and cargo-fuzz; not part of make test or CI);"
	@echo "                  FUZZ_TARGETS=\"decode ...\" to choose; crashes land in fuzz/artifacts/TARGET/"
	@echo "make blinks       the blink tests (tests/tests/blinks.rs) and their long variants (a slave stopped for 20 s)"
	@echo "make elections    the election tests (tests/tests/elections.rs) and their long variants (15-20 s faults)"
	@echo "make failover-bench  each election test's fault 5 times on release builds; writes bench-results/failover-<date>.md"
	@echo "make fsync-bench  WRITE with every slave at --fsync always against redis appendfsync always, alternating,"
	@echo "                  with the slaves' STOREs per sync and time in syncs (FB_ROUNDS=3; see the script)"

build:
	$(CARGO) build --release --bins

# `make -o build install` copies what is in $(RELEASE) without building (the tests do that).
install: build
	install -d "$(DESTDIR)$(BINDIR)"
	install -m 755 $(addprefix $(RELEASE)/,$(BINARIES)) "$(DESTDIR)$(BINDIR)/"

# The process-level tests start the debug binaries, so build them first.
test:
	scripts/test-tools.sh
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) fmt --all -- --check

fmt:
	$(CARGO) fmt --all

# `set -m` runs the script as the terminal's foreground job: Ctrl-C reaches the cluster, which
# stops cleanly and exits 0, and not make, which would otherwise die of the signal itself.
# (`; exit` keeps bash from exec'ing the script in make's process group.)
run-cluster: build
	@bash -c 'set -m; scripts/run-cluster.sh $(RELEASE); exit $$?'

bench:
	scripts/bench.sh

# Not part of make test: the full run takes about half an hour (SHORT=1: a few minutes).
scale:
	SHORT=$(SHORT) scripts/scale.sh

mem:
	scripts/mem.sh

attacks:
	scripts/attacks-rss.sh

# The long torture run (the short one is part of make test): DURATION seconds of faults, a
# SEED to replay a schedule (default: from the clock, printed), CLIENTS concurrent clients.
# TORTURE_ARGS passes more flags (dsm-torture --help). Exit status 0 only on PASS.
DURATION ?= 300
SEED ?=
CLIENTS ?= 5
TORTURE_HISTORY ?= target/torture-history.jsonl
torture: build
	$(RELEASE)/dsm-torture --duration-s $(DURATION) --clients $(CLIENTS) \
		$(if $(SEED),--seed $(SEED)) --history $(TORTURE_HISTORY) $(TORTURE_ARGS)

# The blink tests of make test again, then their long variants (ignored in make test: the
# tests named long_*). The other ignored blink tests are known failures (see their reasons).
blinks:
	$(CARGO) build --workspace --bins
	$(CARGO) test -p dsm-tests --test blinks
	$(CARGO) test -p dsm-tests --test blinks -- --ignored long_

# The fuzzers (fuzz/README.md): the seeds from a real exchange go into fuzz/corpus first, the
# checked-in corpus is read too; each target runs FUZZ_SECONDS, one after another, at nice 19.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= decode handshake standby_sync slave_replay
FUZZ_TOOLCHAIN ?= +nightly
fuzz:
	$(CARGO) test -p dsm-tests --test fuzz_corpus -- --ignored write_seeds
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p corpus/$$t corpus-min/$$t && \
		nice -n 19 $(CARGO) $(FUZZ_TOOLCHAIN) fuzz run $$t corpus/$$t corpus-min/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 || exit 1; \
	done

# The election tests of make test again, then their long variants (the tests named long_*:
# the backup stopped for 20 s, the primary stopped for 15 s, partitions held for 10 s).
elections:
	$(CARGO) build --workspace --bins
	$(CARGO) test -p dsm-tests --test elections
	$(CARGO) test -p dsm-tests --test elections -- --ignored long_

# ROUNDS=n rounds (default 5), LONG=1 with the long variants, FILTER=name to pick tests.
failover-bench:
	scripts/failover-bench.sh

# Issue 16 item 8 (bench-results/fsync-2026-12-03.md). Prints its table; writes no file.
fsync-bench: build
	scripts/fsync-bench.sh

clean:
	$(CARGO) clean
