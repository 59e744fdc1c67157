# sslsuite: ucspi-style TLS wrappers. djb-style configuration: the first
# line of conf-cc compiles, the first line of conf-ld links. EXTRA_CFLAGS and
# EXTRA_LDFLAGS are added after them (CI: -Werror; check-asan: sanitizers).
# Objects and programs go to $(BUILD).

BUILD ?= build
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
EXTRA_CFLAGS ?=
EXTRA_LDFLAGS ?=

CC := $(shell head -n 1 conf-cc)
LD := $(shell head -n 1 conf-ld)
AR ?= ar
LIBS := -lssl -lcrypto -lskarnet
# sslrules needs no TLS: with the modules in an archive, each program links
# only the modules it uses, and sslrules none that touch OpenSSL.
LIBS_sslrules := -lskarnet

PROGRAMS := sslserver sslhandoff sslrules sslclient
SCRIPTS := sslcat sslconnect
MODULES := log logtls number options tlsctx tlsenv relay front handshake ucspitls privs app connenv listener notify engine rules rulestext lookup connection peer connector tickets scope proxy offer counters check pool

HEADERS := $(wildcard src/*.h)
MODULE_OBJS := $(MODULES:%=$(BUILD)/%.o)
BINS := $(PROGRAMS:%=$(BUILD)/%) $(SCRIPTS:%=$(BUILD)/%)

.PHONY: all clean check check-asan check-fresh soak demo deps install fuzz bench
.DELETE_ON_ERROR:

all: $(BINS)

$(BUILD)/%.o: src/%.c $(HEADERS) conf-cc | $(BUILD)
	$(CC) $(EXTRA_CFLAGS) -c -o $@ $<

$(SCRIPTS:%=$(BUILD)/%): $(BUILD)/%: src/%.sh | $(BUILD)
	cp src/$*.sh $@ && chmod 755 $@

$(BUILD)/libsslsuite.a: $(MODULE_OBJS)
	rm -f $@ && $(AR) rcs $@ $(MODULE_OBJS)

$(PROGRAMS:%=$(BUILD)/%): $(BUILD)/%: $(BUILD)/%.o $(BUILD)/libsslsuite.a conf-ld
	$(LD) $(EXTRA_LDFLAGS) -o $@ $< $(BUILD)/libsslsuite.a $(or $(LIBS_$*),$(LIBS))

$(BUILD):
	mkdir -p $(BUILD)

deps:
	sh tests/deps.sh

check: deps all
	BUILD=$(abspath $(BUILD)) prove tests/

# The long soak (hostile.t's connection count raised to SOAK_CONNECTIONS);
# make check runs a smaller form of the same checks.
SOAK_CONNECTIONS ?= 10000
soak: deps all
	BUILD=$(abspath $(BUILD)) SOAK_CONNECTIONS=$(SOAK_CONNECTIONS) prove tests/hostile.t

# The README's quick-start lines, as written, in a new debootstrap'ed
# Debian 12 (minbase) chroot: see tests/check-fresh.sh. Root only.
check-fresh:
	sh tests/check-fresh.sh

check-asan: deps
	$(MAKE) BUILD=build-asan EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer" EXTRA_LDFLAGS="-fsanitize=address,undefined" all
	BUILD=$(abspath build-asan) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 prove tests/

demo: deps all
	sh examples/demo.sh $(abspath $(BUILD))

# libFuzzer targets (clang): the rules-text compiler, the cdb value decoder,
# the UCSPI-TLS block reader, the PROXY header parser and the small value
# parsers. Each runs FUZZ_SECONDS from the committed seed corpus in
# tests/fuzz/corpus; new inputs go to build-fuzz/, crashes to
# build-fuzz/crash-*.
FUZZ_SECONDS ?= 10
FUZZ_TARGETS := rulestext rulesdecode block parse proxy
FUZZ_MODULES := number rules rulestext ucspitls peer proxy
FUZZ_FLAGS := -g -O1 -std=c99 -D_GNU_SOURCE -Isrc -fsanitize=address,undefined -fno-sanitize-recover=undefined

fuzz: deps
	mkdir -p build-fuzz
	for m in $(FUZZ_MODULES) ; do clang $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c -o build-fuzz/$$m.o src/$$m.c || exit 1 ; done
	for t in $(FUZZ_TARGETS) ; do clang $(FUZZ_FLAGS) -fsanitize=fuzzer -o build-fuzz/fuzz_$$t tests/fuzz/fuzz_$$t.c $(FUZZ_MODULES:%=build-fuzz/%.o) $(LIBS) || exit 1 ; done
	for t in $(FUZZ_TARGETS) ; do mkdir -p build-fuzz/corpus-$$t && build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -artifact_prefix=build-fuzz/crash-$$t- build-fuzz/corpus-$$t tests/fuzz/corpus/$$t || exit 1 ; done

bench: all
	sh bench/run

install: all
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	for p in $(PROGRAMS) $(SCRIPTS) ; do install -m 755 $(BUILD)/$$p $(DESTDIR)$(BINDIR)/$$p ; done
	for p in $(PROGRAMS) ; do install -m 644 man/$$p.1 $(DESTDIR)$(MANDIR)/man1/$$p.1 ; done

clean:
	rm -rf build build-asan build-fuzz
