# Thin wrapper: install missing Debian packages, configure, build, run.
# The logic lives in CMake and ctest, so `make test` and ctest never disagree.

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 20
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX     ?= /usr/local
DESTDIR    ?=

BUILD_DEBS = cmake make gcc pkg-config luajit2 libluajit2-5.1-dev libuv1-dev \
             libhiredis-dev libmsgpack-dev libssl-dev
# LDoc runs under Lua 5.1, where Debian's lua-markdown lives.
DOCS_DEBS  = lua-ldoc:ldoc lua5.1 lua-markdown
TEST_DEBS  = $(BUILD_DEBS) lua-busted lua-check redis-server redis-tools \
             clang libclang-rt-14-dev cppcheck clang-format valgrind \
             python3-msgpack socat openssl curl luarocks $(DOCS_DEBS) \
             prometheus:promtool redis-sentinel:redis-sentinel
# nodejs:node and npm:npm are installed only when the command is missing:
# node may come from elsewhere (NodeSource's nodejs carries its own npm, and
# apt refuses Debian's npm next to it).
BENCH_DEBS = $(TEST_DEBS) lua-resty-lrucache python3-redis python3-hiredis \
             nodejs:node npm:npm

LUA_SOURCES = $(wildcard lua spec examples bench)

.PHONY: all run test bench deps-build deps-test deps-bench build build-asan \
        build-fuzz lint format check-c check-asan check-fresh fuzz clean install \
        docs

all: build

# Installs only what is missing; needs root (or sudo) when something is.
# An entry is a Debian package (missing: not installed per dpkg), or
# package:command (missing: no such command on PATH, whatever installed it).
define install_debs
	@missing=$$(for e in $(1); do p=$${e%%:*}; c=$${e#*:}; \
	    if [ "$$c" != "$$e" ]; then command -v "$$c" >/dev/null 2>&1 || echo $$p; \
	    else dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	        | grep -q 'install ok installed' || echo $$p; fi; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

deps-build:
	$(call install_debs,$(BUILD_DEBS))

deps-test:
	$(call install_debs,$(TEST_DEBS))

deps-bench:
	$(call install_debs,$(BENCH_DEBS))

build: deps-build
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

run: build
	$(BUILD)/cachert examples/quickstart.lua

build-asan: deps-test
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCACHERT_BUILD_TESTS=ON \
	    -DCACHERT_SANITIZE="address;undefined" >/dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS)

build-fuzz: deps-test
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
	    -DCACHERT_BUILD_TESTS=OFF -DCACHERT_FUZZ=ON \
	    -DCACHERT_FUZZ_SECONDS=$(FUZZ_SECONDS) >/dev/null
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target fuzz_codec fuzz_globmatch

lint: deps-test
	luacheck -q $(LUA_SOURCES)
	clang-format --dry-run -Werror src/*.c src/*.h spec/c/*.c spec/c/*.h spec/fuzz/*.c
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --inline-suppr --std=c11 -I src src

format:
	clang-format -i src/*.c src/*.h spec/c/*.c spec/c/*.h spec/fuzz/*.c

check-c: deps-test build
	cmake -S . -B $(BUILD) -DCACHERT_BUILD_TESTS=ON >/dev/null
	cmake --build $(BUILD) -j$(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

check-asan: build-asan
	cd $(ASAN_BUILD) && ctest --output-on-failure -j$(JOBS)

fuzz: build-fuzz
	cd $(FUZZ_BUILD) && ctest --output-on-failure -L fuzz

# `make run` in a copy of this repository, in mount and network namespaces
# that hide the test tools and apt-get: what a machine with only the build
# packages sees. Skipped, loudly, where unshare is not permitted (exit 77).
check-fresh: deps-build
	@sh spec/fresh_run_check.sh || { s=$$?; [ $$s = 77 ] || exit $$s; }

# Every test: linters, the suite, the suite under ASan/UBSan, bounded fuzzing,
# and `make run` with only the build packages.
test: deps-test lint check-c check-asan fuzz check-fresh
	@echo "all tests passed"

bench: deps-bench build
	bench/run.sh

# The HTML reference of the Lua modules, from their doc comments (config.ld).
docs:
	$(call install_debs,$(DOCS_DEBS))
	lua5.1 "$$(command -v ldoc)" -d $(BUILD)/docs .
	@echo "open $(BUILD)/docs/index.html"

# `make install PREFIX=/opt/cachert DESTDIR=/tmp/stage` puts the files under
# /tmp/stage/opt/cachert (for packaging); without DESTDIR, under PREFIX.
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
