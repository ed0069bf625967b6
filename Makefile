# alphapulse — build, test, bench.
#   make run    set up, build, run the main job on the demo repository
#   make test   set up, build, run every test (unit, parity, integration, sanitizers, fuzz)
#   make bench  benchmarks against the reference libraries
#
# Variant builds share this file: `make BUILD=build/asan SAN=address,undefined lib tests`.

CC      ?= cc
BUILD   ?= build
SAN     ?=
OPT     ?= -O2
PYTHON  ?= /usr/bin/python3

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -Iinclude -Isrc -MMD -MP $(CFLAGS)
LDLIBS_ALL := -ljansson -lmicrohttpd -lz -lhiredis -lnghttp2 -lprotobuf-c -ldl -lm -lpthread $(LDLIBS)
ifneq ($(SAN),)
CFLAGS_ALL += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS_ALL := -fsanitize=$(SAN) $(LDFLAGS)
else
LDFLAGS_ALL := $(LDFLAGS)
endif

# The GPU backend (src/gpu, docs/GPU.md): src/gpu/cuda.cu is built when nvcc
# is found (PATH, then /usr/local/cuda); NVCC=false builds without it (the
# C fallback in src/gpu/nocuda.c: "built without CUDA"). The CUDA runtime is
# linked statically, so nothing needs LD_LIBRARY_PATH.
ifeq ($(origin NVCC),undefined)
NVCC    := $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
endif
NVCC_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
  -gencode arch=compute_90,code=compute_90
ifneq ($(filter-out false,$(NVCC)),)
CUDA_HOME ?= $(abspath $(dir $(realpath $(shell command -v $(NVCC))))..)
CU_SRC   := src/gpu/cuda.cu
CFLAGS_ALL += -DAP_HAVE_CUDA
LDLIBS_ALL += -L$(CUDA_HOME)/lib64 -lcudart_static -lrt -lstdc++
NVCCFLAGS := -std=c++17 -O2 --fmad=false -DAP_HAVE_CUDA -D_GNU_SOURCE -Iinclude -Isrc $(NVCC_ARCH) \
  -Xcompiler -fPIC,-fvisibility=hidden,-Wall
else
CU_SRC   :=
endif

LIB_SRC  := $(sort $(filter-out src/cli/%,$(wildcard src/*/*.c)))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/*/test_*.c))
BENCH_SRC:= $(sort $(wildcard bench/*.c))

# ONNX (src/onnx): C code for onnx.proto generated at build time by protoc-c
# from the copy libonnx-dev ships; never committed. One copy in build/gen is
# shared by every variant build; its object joins the library.
GEN      := build/gen
ONNX_PROTO ?= /usr/include/onnx/onnx.proto
# gRPC (src/grpc): the same for proto/grpc_service.proto, our subset of the
# Open Inference Protocol's service.
GRPC_PROTO := proto/grpc_service.proto
GEN_SRC  := $(GEN)/onnx.pb-c.c $(GEN)/grpc_service.pb-c.c
CFLAGS_ALL += -I$(GEN)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/onnx.pb-c.o $(CU_SRC:%.cu=$(BUILD)/obj/%.o) \
            $(BUILD)/obj/gen/grpc_service.pb-c.o
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
LIB      := $(BUILD)/libalphapulse.a
# The shared library (python/ loads it): the same sources compiled again as
# position-independent code with hidden visibility, so that it exports the
# public API (AP_API in include/alphapulse/) and nothing else. Plain builds
# only: a sanitizer runtime cannot be loaded into a Python process.
SO_OBJ   := $(LIB_SRC:%.c=$(BUILD)/pic/%.o) $(BUILD)/pic/gen/onnx.pb-c.o $(CU_SRC:%.cu=$(BUILD)/pic/%.o) \
            $(BUILD)/pic/gen/grpc_service.pb-c.o
SO       := $(if $(SAN),,$(BUILD)/libalphapulse.so)
CLI      := $(BUILD)/alphapulse
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all lib so cli tests setup run test test-only bench clean fuzz
all: lib so cli

lib: $(LIB)
so: $(SO)
cli: $(CLI)
tests: $(TESTS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fPIC -fvisibility=hidden -c $< -o $@

# nocuda.c compiles to the fallback or to nothing by AP_HAVE_CUDA: a build
# folder switched between NVCC=false and nvcc recompiles it (the stamp).
GPU_STAMP := $(BUILD)/gpu-$(if $(CU_SRC),cuda,none).stamp
$(GPU_STAMP):
	@mkdir -p $(dir $@)
	@rm -f $(BUILD)/gpu-*.stamp
	@touch $@
$(BUILD)/obj/src/gpu/nocuda.o $(BUILD)/pic/src/gpu/nocuda.o: $(GPU_STAMP)

$(BUILD)/obj/%.o: %.cu src/gpu/kernel_body.h src/gpu/gpu.h
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@
$(BUILD)/pic/%.o: %.cu src/gpu/kernel_body.h src/gpu/gpu.h
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(GEN)/onnx.pb-c.c $(GEN)/onnx.pb-c.h &: $(ONNX_PROTO)
	@mkdir -p $(GEN)
	protoc-c -I$(dir $(ONNX_PROTO)) --c_out=$(GEN) $(ONNX_PROTO)
$(GEN)/grpc_service.pb-c.c $(GEN)/grpc_service.pb-c.h &: $(GRPC_PROTO)
	@mkdir -p $(GEN)
	protoc-c -Iproto --c_out=$(GEN) $(GRPC_PROTO)
$(BUILD)/obj/gen/%.pb-c.o: $(GEN)/%.pb-c.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@
$(BUILD)/pic/gen/%.pb-c.o: $(GEN)/%.pb-c.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fPIC -fvisibility=hidden -c $< -o $@
# The status page (GET /): src/server/status_page.html as a C array, made at
# build time (xxd -i, its arrays made static const), never committed.
$(GEN)/status_page.h: src/server/status_page.html
	@mkdir -p $(GEN)
	cd src/server && xxd -i status_page.html | sed 's/^unsigned/static const unsigned/' > ../../$@.part
	mv $@.part $@
$(BUILD)/obj/src/server/handlers_info.o $(BUILD)/pic/src/server/handlers_info.o: $(GEN)/status_page.h
# sources that include onnx.pb-c.h need it generated before they compile
$(LIB_OBJ) $(SO_OBJ) $(CLI_OBJ) $(TESTS): | $(GEN)/onnx.pb-c.h $(GEN)/grpc_service.pb-c.h

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/libalphapulse.so: $(SO_OBJ)
	$(CC) -shared -Wl,-soname,libalphapulse.so -Wl,--no-undefined $(LDFLAGS_ALL) -o $@ $^ \
	  $(LDLIBS_ALL)

$(CLI): $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS_ALL)

$(BUILD)/tests/%: tests/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests -o $@ $< $(LIB) -lcmocka $(LDLIBS_ALL) $(LDFLAGS_ALL)

setup:
	@tools/setup-deps.sh

run: setup all
	@tools/run-demo.sh

# Everything: plain build + tests (with the GPU backend when nvcc is here),
# ASan/UBSan build + C tests and TSan for the threaded parts (both without
# it: NVCC=false, the build CI gets where nvcc is absent), short fuzz runs, script tests (parity, CLI, integration).
test: setup
	@$(MAKE) --no-print-directory all tests
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=address,undefined OPT=-O1 NVCC=false all tests
	@$(MAKE) --no-print-directory BUILD=build/tsan SAN=thread OPT=-O1 NVCC=false all tests
	@$(MAKE) --no-print-directory fuzz
	@tests/run.sh

# Run the suite against what is already built (no setup, no rebuild).
test-only:
	@tests/run.sh

FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
fuzz: $(FUZZ_BIN)
build/fuzz/%: tests/fuzz/%.c $(filter-out src/cli/%,$(wildcard src/*/*.c)) $(GEN_SRC) \
  $(GEN)/status_page.h
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -Isrc -I$(GEN) -fsanitize=fuzzer,address,undefined \
	  -o $@ $< $(filter-out src/cli/%,$(wildcard src/*/*.c)) $(GEN_SRC) \
	  -ljansson -lmicrohttpd -lz -lhiredis -lnghttp2 -lprotobuf-c -ldl -lm -lpthread

# Bench programs (bench/*.c): linked against the library and XGBoost's C API
# (libxgboost-dev), the reference they are timed against.
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIB) -lxgboost $(LDLIBS_ALL) $(LDFLAGS_ALL)

# bench_gpu (the GPU path, tools/gpu-check.sh) needs no reference library:
# a machine with a GPU may not have libxgboost.
$(BUILD)/bench/bench_gpu: bench/bench_gpu.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIB) $(LDLIBS_ALL) $(LDFLAGS_ALL)

bench: setup all
	@$(MAKE) --no-print-directory $(BENCH_BIN)
	@bench/run.sh

clean:
	rm -rf build python/build python/*.egg-info

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(SO_OBJ:.o=.d)
