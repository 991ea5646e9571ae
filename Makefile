# SPDX-License-Identifier: MIT
# Thin wrapper over CMake. Every target installs missing Debian packages
# first, so a fresh Debian 12 clone needs nothing else.

BUILD ?= build
CMAKE_FLAGS ?=
ARGS ?=
MAKEFLAGS += --no-print-directory
CTEST_FLAGS ?=
ifeq ($(SAN),1)
BUILD := build-san
CMAKE_FLAGS += -DSBX_SANITIZE=ON
# The clang build and the fuzz smoke run do not change under ASan and
# already run in the plain make test.
CTEST_FLAGS += -E 'build_with_clang|fuzz_smoke'
endif

.PHONY: all deps build run demo test bench soak fuzz clean

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$$(nproc)

run: build
	./scripts/run.sh $(BUILD) $(ARGS)

demo: build
	./scripts/demo.sh $(BUILD)

test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 600 $(CTEST_FLAGS)

bench: build
	./scripts/bench.sh $(BUILD) $(if $(filter 1,$(QUICK)),--quick,)

soak: build
	./scripts/soak.sh $(BUILD) $(if $(CYCLES),--cycles $(CYCLES),)

fuzz: deps
	./scripts/fuzz.sh $(if $(SECONDS),--seconds $(SECONDS),)

clean:
	rm -rf build build-san build-clang build-fuzz
