# slmkit — plain Makefile. `make` builds build/slm; `make test` runs every suite.
# Baseline code for the target; SIMD lives only in per-ISA files (x86-64: *_avx2.c, *_avx512.c,
# *_x86.c; aarch64: *_neon.c, *_dotprod.c, *_i8mm.c, *_sve.c, *_arm.c), each built with its
# flags for its target only and chosen at run time from the CPU's features. Any other 64-bit
# little-endian Linux target builds the scalar set. `make cross-aarch64`: see docs/aarch64.md.

CC      ?= gcc
BUILD   ?= build
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
# Position-independent objects (the same ones go into build/slm, the static archives and libslm.so.0);
# hidden visibility: only what include/slm.h marks SLM_API leaves libslm.so.0 (see LIBSLM below).
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wshadow -pthread $(SAN) \
           -fPIC -fvisibility=hidden -I$(BUILD)
# Per-module include paths: a room sees only the faces ARCHITECTURE.md lets it use, so a forbidden
# #include fails to compile. (-I. is for tests/ and fuzz/, which include fuzz/*.c.)
INC_base     := -Ibase -Iinclude
INC_formats  := -Iformats $(INC_base)
INC_libquant := -Ilibquant $(INC_base)
INC_signing  := -Isigning $(INC_base)
INC_runtime  := -Iruntime -Iformats -Ilibquant $(INC_base)
INC_bench    := -Ibench -Iruntime -Iformats -Ilibquant $(INC_base)
INC_api      := -Iapi -Iruntime -Iformats -Ilibquant -Isigning $(INC_base)
INC_registry := -Iregistry -Isigning -Iapi $(INC_base)
INC_sweep    := -Isweep -Ibench -Iformats -Ilibquant $(INC_base)
INC_serve    := -Iserve -Iapi -Isigning $(INC_base)
INC_ALL      := -I. -Itools -Iapi -Iserve -Isweep -Iregistry -Ibench -Iruntime -Isigning -Iformats -Ilibquant $(INC_base)
# tools/ sees the API layer and the rooms above it, never runtime/, formats/ or libquant/: a command
# is option parsing, an API call and printing (api/pipeline.h reaches the types below by path).
INC_tools    := -Itools -Iapi -Iserve -Isweep -Iregistry -Isigning $(INC_base)
# bench and compare print rows of bench/'s report face (bench.h: functions of the bench room only).
$(BUILD)/tools/bench.o $(BUILD)/tools/compare.o: INC_tools += -Ibench
INC_tests    := $(INC_ALL)
INC_fuzz     := $(INC_ALL)
# the include path of an object: its module's (build/<module>/x.o)
inc_of = $(or $(INC_$(firstword $(subst /, ,$(patsubst $(BUILD)/%,%,$(1))))),$(INC_ALL))
LDFLAGS += -pthread $(SAN)
LDLIBS  += -lmicrohttpd -lcurl -lcjson -lzstd -lcrypto -lpcre2-8 -llapacke -lopenblas -lm

AVX2_FLAGS   = -mavx2 -mfma -mf16c
AVX512_FLAGS = -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni
NEON_FLAGS    = -march=armv8-a
DOTPROD_FLAGS = -march=armv8.2-a+dotprod
I8MM_FLAGS    = -march=armv8.2-a+dotprod+i8mm
SVE_FLAGS     = -march=armv8.2-a+dotprod+i8mm+sve
FHM_FLAGS     = -march=armv8.2-a+dotprod+fp16fml

# The target's ISA (from the compiler, so CC=aarch64-linux-gnu-gcc cross-builds) picks the files.
TARGET_ARCH := $(firstword $(subst -, ,$(shell $(CC) -dumpmachine 2>/dev/null)))
X86_SRCS := %_avx2.c %_avx512.c %_x86.c
ARM_SRCS := %_neon.c %_dotprod.c %_i8mm.c %_sve.c %_fhm.c %_arm.c
ifeq ($(TARGET_ARCH),x86_64)
NOT_TARGET_SRCS := $(ARM_SRCS)
else ifneq ($(filter aarch64 arm64,$(TARGET_ARCH)),)
NOT_TARGET_SRCS := $(X86_SRCS)
else
NOT_TARGET_SRCS := $(X86_SRCS) $(ARM_SRCS)
endif

MODULES := base formats libquant runtime signing registry bench serve sweep api
LIBS    := $(foreach m,$(MODULES),$(BUILD)/lib$(m).a)
# link order: users before what they use
LINKLIBS := $(foreach m,serve sweep bench registry api runtime signing libquant formats base,$(BUILD)/lib$(m).a)

objs_of = $(patsubst %.c,$(BUILD)/%.o,$(filter-out $(NOT_TARGET_SRCS),$(wildcard $(1)/*.c)))

TOOL_OBJS := $(call objs_of,tools)
TEST_OBJS := $(call objs_of,tests)

.PHONY: man completion install-man install-completion uninstall-man uninstall-completion deb deb-check
.PHONY: all clean test asan asan-build fuzz fuzz-bins fuzz-build fuzz-run deps deps-build demo bench cross-aarch64 check-aarch64 lib install uninstall \
        install-bin install-lib install-python uninstall-bin uninstall-lib uninstall-python
all: $(BUILD)/slm

GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
GIT_DIRTY  := $(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
$(BUILD)/version.h: FORCE
	@mkdir -p $(BUILD)
	@echo '#define SLM_GIT_COMMIT "$(GIT_COMMIT)$(GIT_DIRTY)"' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
FORCE:
# The compiler and flags the objects were built with: a change (SAN, OPT, -fvisibility, a new
# include path) rebuilds every object instead of linking stale ones. -I$(BUILD) is left out: the
# same tree named by an absolute path (the lib suite's `make install BUILD=/abs/build`) is no change.
$(BUILD)/cflags.txt: FORCE
	@mkdir -p $(BUILD)
	@echo '$(CC) $(filter-out -I$(BUILD),$(CFLAGS))' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

$(BUILD)/%_avx2.o: %_avx2.c $(BUILD)/cflags.txt
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX2_FLAGS) $(call inc_of,$@) -MMD -MP -c $< -o $@
$(BUILD)/%_avx512.o: %_avx512.c $(BUILD)/cflags.txt
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX512_FLAGS) $(call inc_of,$@) -MMD -MP -c $< -o $@
$(BUILD)/%_neon.o: %_neon.c $(BUILD)/cflags.txt
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(NEON_FLAGS) $(call inc_of,$@) -MMD -MP -c $< -o $@
$(BUILD)/%_dotprod.o: %_dotprod.c $(BUILD)/cflags.txt
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DOTPROD_FLAGS) $(call inc_of,$@) -MMD -MP -c $< -o $@
$(BUILD)/%_i8mm.o: %_i8mm.c $(BUILD)/cflags.txt
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(I8MM_FLAGS) $(call inc_of,$@) -MMD -MP -c $< -o $@
$(BUILD)/%_sve.o: %_sve.c $(BUILD)/cflags.txt
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SVE_FLAGS) $(call inc_of,$@) -MMD -MP -c $< -o $@
$(BUILD)/%_fhm.o: %_fhm.c $(BUILD)/cflags.txt
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(FHM_FLAGS) $(call inc_of,$@) -MMD -MP -c $< -o $@
$(BUILD)/%.o: %.c $(BUILD)/cflags.txt | $(BUILD)/version.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(call inc_of,$@) -MMD -MP -c $< -o $@

define LIB_RULE
$(BUILD)/lib$(1).a: $(call objs_of,$(1))
	@mkdir -p $$(dir $$@)
	rm -f $$@
	ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call LIB_RULE,$(m))))

$(BUILD)/slm: $(TOOL_OBJS) $(LIBS)
	$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJS) $(LINKLIBS) $(LDLIBS)

# One Criterion binary holding every suite (module suites + CLI end-to-end).
$(BUILD)/slm_tests: $(TEST_OBJS) $(LIBS)
	$(CC) $(LDFLAGS) -o $@ $(TEST_OBJS) $(LINKLIBS) $(LDLIBS) -lcriterion

SLM_MODELS ?= $(abspath ../shared/models)
SLM_CORPUS ?= $(abspath ../shared/corpus)
# llama.cpp's CLI tools (llama-perplexity, llama-quantize, ...), built by `make deps` from the source
# that the pinned node-llama-cpp package ships; a test oracle and benchmark peer, never vendored.
LLAMA_CPP_DIR ?= $(HOME)/.cache/slmkit/llama.cpp-src
SLM_LLAMA_BIN ?= $(LLAMA_CPP_DIR)/build/bin
export SLM_MODELS SLM_CORPUS SLM_LLAMA_BIN

# make test: the whole suite. The tests run the freshly built binary.
# (suite lib installs the tree into a scratch DESTDIR and builds examples/ against it: SLM_BUILD;
# SLM_SAN tells it the objects are instrumented, and then skips that. Everything the install copies
# is built first, so the suite's concurrent installs only copy.)
test: $(BUILD)/slm $(BUILD)/slm_tests lib $(if $(SAN),,man completion)
	SLM_BIN=$(abspath $(BUILD)/slm) SLM_TESTDIR=$(abspath tests) SLM_BUILD=$(abspath $(BUILD)) SLM_SAN='$(SAN)' \
	    ./$(BUILD)/slm_tests -j2 --short-filename $(TEST_ARGS)

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its own build dir. GCC leaves
# float-cast-overflow out of -fsanitize=undefined (clang does not): a NaN cast to int is a bug we want to see.
ASAN_SAN := -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer -fno-sanitize-recover=undefined,float-cast-overflow
# LeakSanitizer runs when each forked test process exits, after Criterion has counted the test as
# passed, so its reports cannot fail a test: every sanitizer report (of the test processes and of the
# slm binaries they run) goes to build-asan/sanitizer/, and any report fails `make asan`. Two frames
# per allocation (malloc_context_size=2) keep tests/lsan.supp to Criterion's own allocations (see
# there). Deadlines of the tests are scaled (SLM_TEST_TIME_SCALE): sanitizers and a loaded machine
# are slower.
SAN_LOGS = $(abspath build-asan/sanitizer)
ASAN_VARS = BUILD=build-asan OPT=-O1 SAN="$(ASAN_SAN)"
# asan-build: only build what `make asan` runs (.ci/run builds it while the plain suite runs)
asan-build:
	$(MAKE) $(ASAN_VARS) build-asan/slm build-asan/slm_tests lib
asan:
	@rm -rf $(SAN_LOGS) && mkdir -p $(SAN_LOGS)
	LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp):print_suppressions=0 \
	ASAN_OPTIONS=log_path=$(SAN_LOGS)/report:malloc_context_size=2 \
	SLM_TEST_TIME_SCALE=$${SLM_TEST_TIME_SCALE:-4} $(MAKE) $(ASAN_VARS) test; rc=$$?; \
	if ls $(SAN_LOGS)/report.* >/dev/null 2>&1; then cat $(SAN_LOGS)/report.*; \
	    echo "make asan: sanitizer reports above (also in $(SAN_LOGS))" >&2; exit 1; fi; exit $$rc

# libFuzzer targets (clang): one per parser, fuzz/fuzz_<target>.c; `make fuzz FUZZ_SECONDS=N` runs each
# for N seconds from its seed corpus (fuzz/corpus/<target>) and past findings (fuzz/regressions/<target>).
# New corpus units and crash artifacts go to build-fuzz/fuzz/; see docs/reliability.md for long campaigns.
FUZZ_TARGETS := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 10
FUZZ_ARGS    ?=
FUZZ_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZ_VARS = BUILD=build-fuzz CC=clang OPT=-O1 SAN="$(FUZZ_SAN) -fsanitize=fuzzer-no-link"
fuzz:
	$(MAKE) $(FUZZ_VARS) fuzz-run
# fuzz-bins: only build build-fuzz/fuzz/fuzz_* (.ci/run builds them while the plain suite runs)
fuzz-bins:
	$(MAKE) $(FUZZ_VARS) fuzz-build
$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_common.h $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(INC_fuzz) -DSLM_FUZZ_MAIN -fsanitize=fuzzer -o $@ $< $(LINKLIBS) $(LDLIBS)
fuzz-build: $(foreach t,$(FUZZ_TARGETS),$(BUILD)/fuzz/fuzz_$(t))
# One rule per target, so `make -j2 fuzz` runs two targets at a time (each still FUZZ_SECONDS long).
FUZZ_RUNS := $(addprefix fuzz-run-,$(FUZZ_TARGETS))
.PHONY: $(FUZZ_RUNS)
fuzz-run: $(FUZZ_RUNS)
$(FUZZ_RUNS): fuzz-run-%: $(BUILD)/fuzz/fuzz_%
	@mkdir -p $(BUILD)/fuzz/corpus/$* $(BUILD)/fuzz/artifacts/$*
	@echo "fuzz: $*, $(FUZZ_SECONDS) s"
	@./$(BUILD)/fuzz/fuzz_$* -max_total_time=$(FUZZ_SECONDS) -timeout=20 -rss_limit_mb=2560 \
	    -print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/artifacts/$*/ \
	    -dict=$$(fuzz/dict_of.sh $*) $(FUZZ_ARGS) \
	    $(BUILD)/fuzz/corpus/$* fuzz/corpus/$* $$(test -d fuzz/regressions/$* && echo fuzz/regressions/$*) \
	    2>$(BUILD)/fuzz/$*.log || { tail -n 60 $(BUILD)/fuzz/$*.log; echo "fuzz: $* failed" >&2; exit 1; }
	@echo "fuzz: $*: $$(grep -E '^stat::number_of_executed_units' $(BUILD)/fuzz/$*.log | sed 's/.*: *//') runs"

DEPS_APT = build-essential pkg-config git libzstd-dev libssl-dev libcjson-dev libopenblas-dev liblapacke-dev \
           libcriterion-dev libpcre2-dev time clang libclang-rt-dev cmake python3-numpy python3-yaml \
           libcurl4-openssl-dev docker-registry libmicrohttpd-dev curl prometheus slurm-wlm munge \
           man-db zsh file
# What building slm needs and no more (`make deps-build`; the workflow `slm sweep submit --github` writes).
DEPS_BUILD = build-essential pkg-config libzstd-dev libssl-dev libcjson-dev libopenblas-dev liblapacke-dev \
             libpcre2-dev libcurl4-openssl-dev libmicrohttpd-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# aarch64 cross build and emulation (make cross-aarch64 / check-aarch64): the cross compiler, qemu-user,
# and the arm64 builds of the libraries we link (Debian multiarch; on an amd64 host only).
DEPS_ARM64 = gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user \
             $(foreach p,libzstd-dev libssl-dev libcjson-dev libopenblas-dev liblapacke-dev libpcre2-dev libcurl4-openssl-dev libmicrohttpd-dev,$(p):arm64)
# Debian packages, then the oracles for the interop tests (npm: node-llama-cpp, HF tokenizers, Jinja;
# never vendored), then llama.cpp's CLI tools built from the source node-llama-cpp ships (into
# $(LLAMA_CPP_DIR), outside the tree; a no-op when already built at that commit).
deps:
	[ "$$(dpkg --print-architecture)" != amd64 ] || dpkg --print-foreign-architectures | grep -qx arm64 || \
	    $(SUDO) dpkg --add-architecture arm64
	$(SUDO) apt-get update
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $(DEPS_APT)
	[ "$$(dpkg --print-architecture)" != amd64 ] || \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $(DEPS_ARM64)
	command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y nodejs npm
	cd tests/interop && npm install --no-audit --no-fund --loglevel=error
	./scripts/llama-tools.sh $(LLAMA_CPP_DIR)

deps-build:
	$(SUDO) apt-get update
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $(DEPS_BUILD)

# Speed records: the kernel bench (matrix x vector / matrix x matrix per type and kernel next to
# the measured roofline) and an end-to-end bench (llama-bench's pp512 / tg128 at 1 and 2 threads)
# on a SmolLM-135M-shape model from `slm bench synth`, quantized to each type; results (md + JSON)
# go to bench/results/. Models are cached in $(BUILD)/bench-models. See docs/bench.md.
BENCH_TYPES   ?= Q8_0 Q4_0 Q4_K_M Q6_K Q2_K
BENCH_THREADS ?= 1,2
BENCH_REPS    ?= 3
BENCH_STAMP   := $(shell date +%Y%m%d-%H%M)
BENCH_MODELS  := $(BUILD)/bench-models
bench: $(BUILD)/slm
	@mkdir -p bench/results $(BENCH_MODELS)
	./$(BUILD)/slm bench kernels -t 1 | tee bench/results/kernels-$(BENCH_STAMP).md
	test -f $(BENCH_MODELS)/smol-F16.gguf || { \
	    ./$(BUILD)/slm bench synth --shape smollm-135m --dtype f16 --force -o $(BENCH_MODELS)/smol && \
	    ./$(BUILD)/slm convert $(BENCH_MODELS)/smol -o $(BENCH_MODELS)/smol-F16.gguf --outtype f16; }
	for t in $(BENCH_TYPES); do test -f $(BENCH_MODELS)/smol-$$t.gguf || \
	    ./$(BUILD)/slm quantize $(BENCH_MODELS)/smol-F16.gguf $(BENCH_MODELS)/smol-$$t.gguf $$t || exit 1; done
	./$(BUILD)/slm bench -m $$(echo F16 $(BENCH_TYPES) | tr ' ' '\n' | sed 's|.*|$(BENCH_MODELS)/smol-&.gguf|' | paste -sd,) \
	    -p 512 -n 128 -t $(BENCH_THREADS) -r $(BENCH_REPS) -o jsonl --progress > bench/results/e2e-$(BENCH_STAMP).jsonl
	@echo "wrote bench/results/kernels-$(BENCH_STAMP).md and bench/results/e2e-$(BENCH_STAMP).jsonl"

# The main job end to end on the default model.
demo: $(BUILD)/slm
	./scripts/demo.sh

# aarch64 from x86-64: Debian's cross compiler against the arm64 multiarch libraries (make deps),
# then the emulated checks (qemu-user; scripts/check-aarch64.sh, docs/aarch64.md).
AARCH64_CC ?= aarch64-linux-gnu-gcc
cross-aarch64:
	$(MAKE) CC=$(AARCH64_CC) BUILD=build-aarch64 build-aarch64/slm
check-aarch64: cross-aarch64 $(BUILD)/slm
	SLM_X86=$(abspath $(BUILD)/slm) SLM_ARM=$(abspath build-aarch64/slm) ./scripts/check-aarch64.sh

# ---- libslm: the embeddable library (include/slm.h), its pkg-config file, install ---------------------
# libslm holds the API layer and every library under it (not serve/registry/bench: the tools' own).
# Objects are built with -fvisibility=hidden; libslm.so.0 exports exactly the SLM_API functions of
# include/slm.h (a version script made from the header), and libslm.a is one relocatable object whose
# hidden symbols are made local (objcopy --localize-hidden), so neither leaks gguf_* or any internal
# name into an application that also links ggml.
SLM_VERSION_STR := $(shell sed -n 's/^\#define SLM_VERSION_STRING "\(.*\)"/\1/p' include/slm.h)
LIBSLM_MODULES := api runtime signing libquant formats base
LIBSLM_OBJS := $(foreach m,$(LIBSLM_MODULES),$(call objs_of,$(m)))
LIBSLM_LIBS := -lcjson -lzstd -lcrypto -lpcre2-8 -llapacke -lopenblas -lm -pthread
OBJCOPY ?= objcopy
$(BUILD)/libslm.map: include/slm.h Makefile
	@mkdir -p $(dir $@)
	{ echo '{'; echo '  global:'; \
	  sed -n 's/^SLM_API[^(]*[ *]\(slm_[a-z0-9_]*\)(.*/    \1;/p' include/slm.h; \
	  echo '  local: *;'; echo '};'; } > $@.tmp && mv $@.tmp $@
$(BUILD)/libslm.so.$(SLM_VERSION_STR): $(LIBSLM_OBJS) $(BUILD)/libslm.map
	$(CC) -shared -Wl,-soname,libslm.so.0 -Wl,--version-script=$(BUILD)/libslm.map -Wl,--no-undefined \
	    $(LDFLAGS) -o $@ $(LIBSLM_OBJS) $(LIBSLM_LIBS)
$(BUILD)/libslm.so.0: $(BUILD)/libslm.so.$(SLM_VERSION_STR)
	ln -sf $(notdir $<) $@
$(BUILD)/libslm.a: $(LIBSLM_OBJS)
	$(CC) -r -nostdlib -o $(BUILD)/libslm.o $(LIBSLM_OBJS)
	$(OBJCOPY) --localize-hidden $(BUILD)/libslm.o
	rm -f $@ && ar rcs $@ $(BUILD)/libslm.o
# slm.pc for PREFIX / LIBDIR / INCLUDEDIR: written by install-lib straight into DESTDIR, and by
# `make lib` into build/ (FORCE: replaced only when it differs)
slm_pc = printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCLUDEDIR)' '' \
    'Name: slm' 'Description: slmkit: run, measure, convert and verify small language models (libslm)' \
    'Version: $(SLM_VERSION_STR)' 'Libs: -L$${libdir} -lslm' 'Libs.private: $(LIBSLM_LIBS)' \
    'Cflags: -I$${includedir}' > $(1)
$(BUILD)/slm.pc: FORCE
	@mkdir -p $(dir $@)
	@$(call slm_pc,$@.tmp)
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
lib: $(BUILD)/libslm.so.0 $(BUILD)/libslm.a $(BUILD)/slm.pc

# make install PREFIX=/usr DESTDIR=/tmp/stage: bin/slm, libslm (.so.0, .so, .a), slm.h, slm.pc and the
# Python binding. Each part is an install-* target listed in INSTALL_TARGETS (and uninstall-* in
# UNINSTALL_TARGETS): man pages, completion or others add theirs there (e.g. INSTALL_TARGETS +=
# install-man), and `make deb` builds on `make install DESTDIR=...`.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# Debian's python3 reads /usr/lib/python3/dist-packages and /usr/local/lib/python3.N/dist-packages
PYTHONDIR  ?= $(if $(filter /usr,$(PREFIX)),/usr/lib/python3/dist-packages,$(PREFIX)/lib/$(shell python3 -c 'import sys; print("python%d.%d" % sys.version_info[:2])' 2>/dev/null || echo python3)/dist-packages)
INSTALL_TARGETS   := install-bin install-lib install-python install-man install-completion
UNINSTALL_TARGETS := uninstall-bin uninstall-lib uninstall-python uninstall-man uninstall-completion
MANDIR      ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/vendor-completions
install: $(INSTALL_TARGETS)
uninstall: $(UNINSTALL_TARGETS)
install-bin: $(BUILD)/slm
	install -d $(DESTDIR)$(BINDIR)
	install -m 755 $(BUILD)/slm $(DESTDIR)$(BINDIR)/slm
install-lib: $(BUILD)/libslm.so.0 $(BUILD)/libslm.a
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 $(BUILD)/libslm.so.$(SLM_VERSION_STR) $(BUILD)/libslm.a $(DESTDIR)$(LIBDIR)/
	ln -sf libslm.so.$(SLM_VERSION_STR) $(DESTDIR)$(LIBDIR)/libslm.so.0
	ln -sf libslm.so.0 $(DESTDIR)$(LIBDIR)/libslm.so
	install -m 644 include/slm.h $(DESTDIR)$(INCLUDEDIR)/slm.h
	$(call slm_pc,$(DESTDIR)$(PKGCONFIGDIR)/slm.pc)
install-python:
	install -d $(DESTDIR)$(PYTHONDIR)
	install -m 644 bindings/python/slmkit.py $(DESTDIR)$(PYTHONDIR)/slmkit.py
uninstall-bin:
	rm -f $(DESTDIR)$(BINDIR)/slm
uninstall-lib:
	rm -f $(DESTDIR)$(LIBDIR)/libslm.so.$(SLM_VERSION_STR) $(DESTDIR)$(LIBDIR)/libslm.so.0 \
	    $(DESTDIR)$(LIBDIR)/libslm.so $(DESTDIR)$(LIBDIR)/libslm.a $(DESTDIR)$(INCLUDEDIR)/slm.h \
	    $(DESTDIR)$(PKGCONFIGDIR)/slm.pc
uninstall-python:
	rm -f $(DESTDIR)$(PYTHONDIR)/slmkit.py
	rm -rf $(DESTDIR)$(PYTHONDIR)/__pycache__/slmkit.*

# ---- man pages and shell completion, generated from the option tables (tools/opt.h) -----------------
# `make man`: build/man/slm.1 and slm-CMD.1 for every command of `slm --help` (slm help --man [CMD]);
# `make completion`: build/completion/slm (bash) and _slm (zsh) (slm completion bash|zsh). Both are
# written by the built binary, so they always say what it parses. Suite clidoc checks them (man -l
# --warnings, bash compgen, zsh -n).
SLM_COMMANDS = $$(./$(BUILD)/slm --help | awk '/^Commands:/ {f = 1; next} f && /^  [a-z]/ {print $$1}')
man: $(BUILD)/man/slm.1
$(BUILD)/man/slm.1: $(BUILD)/slm
	rm -rf $(BUILD)/man && mkdir -p $(BUILD)/man
	set -e; for c in $(SLM_COMMANDS); do ./$(BUILD)/slm help --man $$c > $(BUILD)/man/slm-$$c.1; done
	./$(BUILD)/slm help --man > $@.tmp && mv $@.tmp $@
completion: $(BUILD)/completion/slm $(BUILD)/completion/_slm
$(BUILD)/completion/slm: $(BUILD)/slm
	@mkdir -p $(dir $@)
	./$(BUILD)/slm completion bash > $@.tmp && mv $@.tmp $@
$(BUILD)/completion/_slm: $(BUILD)/slm
	@mkdir -p $(dir $@)
	./$(BUILD)/slm completion zsh > $@.tmp && mv $@.tmp $@
install-man: $(BUILD)/man/slm.1
	install -d $(DESTDIR)$(MANDIR)/man1
	install -m 644 $(BUILD)/man/*.1 $(DESTDIR)$(MANDIR)/man1/
install-completion: $(BUILD)/completion/slm $(BUILD)/completion/_slm
	install -d $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	install -m 644 $(BUILD)/completion/slm $(DESTDIR)$(BASHCOMPDIR)/slm
	install -m 644 $(BUILD)/completion/_slm $(DESTDIR)$(ZSHCOMPDIR)/_slm
uninstall-man:
	rm -f $(DESTDIR)$(MANDIR)/man1/slm.1 $(DESTDIR)$(MANDIR)/man1/slm-*.1
uninstall-completion:
	rm -f $(DESTDIR)$(BASHCOMPDIR)/slm $(DESTDIR)$(ZSHCOMPDIR)/_slm

# ---- make deb: a Debian package of `make install PREFIX=/usr` (dpkg-deb) ----------------------------
# The staged tree (build/deb) gets DEBIAN/control from scripts/deb-control.sh: Depends lists the
# Debian packages of the shared libraries slm and libslm.so load, each at least the version built
# against. `make deb-check` (root; CI) installs it with dpkg -i, runs slm --version and man -w, removes
# it with dpkg -r and checks that no file of its dpkg -L list is left (scripts/deb-check.sh).
DEB_ARCH    := $(shell dpkg --print-architecture 2>/dev/null || echo unknown)
DEB_VERSION ?= $(SLM_VERSION_STR)
DEB         := $(BUILD)/slmkit_$(DEB_VERSION)_$(DEB_ARCH).deb
deb: $(DEB)
$(DEB): $(BUILD)/slm $(BUILD)/libslm.so.0 $(BUILD)/libslm.a $(BUILD)/man/slm.1 $(BUILD)/completion/slm \
        $(BUILD)/completion/_slm scripts/deb-control.sh include/slm.h bindings/python/slmkit.py
	rm -rf $(BUILD)/deb
	$(MAKE) --no-print-directory -o $(BUILD)/slm install PREFIX=/usr DESTDIR=$(abspath $(BUILD)/deb) >/dev/null
	mkdir -p $(BUILD)/deb/DEBIAN
	scripts/deb-control.sh $(BUILD)/deb $(DEB_VERSION) $(DEB_ARCH) > $(BUILD)/deb/DEBIAN/control
	dpkg-deb --root-owner-group -Zgzip --build $(BUILD)/deb $@.tmp >/dev/null && mv $@.tmp $@
	@echo "make deb: $@"
deb-check: $(DEB)
	scripts/deb-check.sh $(DEB)

clean:
	rm -rf build build-asan build-fuzz build-aarch64

-include $(wildcard $(BUILD)/*/*.d)
