# tern - one plain GNU Makefile.
#
#   make run     install build dependencies, build, start ternd on built-in defaults
#   make test    install dependencies, build with ASan+UBSan, gcc and clang -Werror,
#                run the unit tests (cmocka) and the integration tests (pytest)
#   make fuzz    build the libFuzzer targets with clang and run each FUZZ_SECONDS
#   make bench   ternd against Postfix with ../shared/bench (root, takes minutes)
#   make all | install | clean
#
# Variables: CC (gcc or clang), ARGS (extra ternd arguments for `make run`),
# FUZZ_SECONDS (default 30), PREFIX (default /usr/local).

CC       ?= cc
PREFIX   ?= /usr/local
ARGS     ?=
FUZZ_SECONDS ?= 30
PYTEST   ?= /usr/bin/python3 -m pytest

WARN     := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wvla
CSTD     := -std=c11 -D_GNU_SOURCE
PKGS     := libuv libcares openssl libpsl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -luv -lcares -lssl -lcrypto -lpsl)
LIBS     := $(PKG_LIBS) -lcrypt -lpthread

CFLAGS_REL  := $(CSTD) $(WARN) -O2 -g $(PKG_CFLAGS)
CFLAGS_TEST := $(CSTD) $(WARN) -O1 -g -fno-omit-frame-pointer \
               -fsanitize=address,undefined -fno-sanitize-recover=undefined $(PKG_CFLAGS)

# Everything but the two main() files goes into one library that the
# programs, the unit tests and the fuzz targets link.
LIB_SRC  := $(wildcard src/lib/*.c src/proto/*.c src/conf/*.c src/smtp/*.c \
                       src/spool/*.c src/deliver/*.c src/daemon/*.c src/cli/*.c \
                       src/dns/*.c src/mailauth/*.c)
HDRS     := $(wildcard src/*/*.h) src/conf/knobs.def

REL      := build/rel
TST      := build/test
REL_OBJ  := $(LIB_SRC:src/%.c=$(REL)/%.o)
TST_OBJ  := $(LIB_SRC:src/%.c=$(TST)/%.o)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(TST)/unit/%)
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)

.PHONY: all run test unit integration check-clang fuzz bench deps install clean

all: $(REL)/ternd $(REL)/tern
	@ln -sf rel/ternd build/ternd; ln -sf rel/tern build/tern

deps:
	@sh scripts/install-deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	./build/ternd $(ARGS)

test: deps
	@$(MAKE) --no-print-directory check-clang
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration

# The same sources must build cleanly with both compilers.
check-clang:
	@$(MAKE) --no-print-directory CC=clang REL=build/clang build/clang/ternd build/clang/tern

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

integration: $(TST)/ternd $(TST)/tern $(TST)/unit/test_dovecot_client $(TST)/unit/test_dns \
             $(TST)/dsn_sample $(TST)/smtpc_probe $(TST)/spf_suite $(TST)/dkim_tool \
             $(TST)/dmarc_tool
	TERND=$(CURDIR)/$(TST)/ternd TERN=$(CURDIR)/$(TST)/tern $(PYTEST) -q -n auto --dist loadfile tests/integration

$(REL)/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(CFLAGS_REL) -c -o $@ $<

$(TST)/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	@$(CC) $(CFLAGS_TEST) -c -o $@ $<

$(REL)/libtern.a: $(REL_OBJ)
	@rm -f $@; ar rcs $@ $^
$(TST)/libtern.a: $(TST_OBJ)
	@rm -f $@; ar rcs $@ $^

%/ternd: %/ternd.o %/libtern.a
	$(CC) $(if $(findstring test,$@),$(CFLAGS_TEST),$(CFLAGS_REL)) -o $@ $^ $(LIBS)
%/tern: %/tern.o %/libtern.a
	$(CC) $(if $(findstring test,$@),$(CFLAGS_TEST),$(CFLAGS_REL)) -o $@ $^ $(LIBS)

$(TST)/unit/%: tests/unit/%.c $(TST)/libtern.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_TEST) -Isrc -o $@ $< $(TST)/libtern.a $(LIBS) -lcmocka

# Sign or verify one message, for tests/integration/test_dkim_interop.py.
$(TST)/dkim_tool: tests/unit/dkim_tool.c $(TST)/libtern.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_TEST) -Isrc -o $@ $< $(TST)/libtern.a $(LIBS)

# The RFC 7208 suite's driver, for tests/integration/test_spf_suite.py.
$(TST)/spf_suite: tests/unit/spf_suite.c tests/unit/driver_text.h $(TST)/libtern.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_TEST) -Isrc -o $@ $< $(TST)/libtern.a $(LIBS)

# One DSN per scenario on stdout, for tests/integration/test_dsn_format.py.
$(TST)/dsn_sample: tests/unit/dsn_sample.c $(TST)/libtern.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_TEST) -Isrc -o $@ $< $(TST)/libtern.a $(LIBS)

# DMARC evaluation against an in-memory zone, for tests/integration/test_dmarc_cases.py.
$(TST)/dmarc_tool: tests/unit/dmarc_tool.c tests/unit/driver_text.h $(TST)/libtern.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_TEST) -Isrc -o $@ $< $(TST)/libtern.a $(LIBS)

# The SMTP/LMTP client from the command line, for tests/integration/test_smtp_client.py.
$(TST)/smtpc_probe: tests/unit/smtpc_probe.c $(TST)/libtern.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_TEST) -Isrc -o $@ $< $(TST)/libtern.a $(LIBS)

# Fuzz targets: clang, libFuzzer, ASan+UBSan; only the pure parsers are linked.
FUZZ_LIB_SRC := $(wildcard src/lib/buf.c src/lib/log.c src/proto/*.c src/conf/*.c) src/spool/qfile.c \
                src/dns/dns_parse.c src/mailauth/spf.c src/mailauth/spf_macro.c \
                src/mailauth/dkim.c src/mailauth/dkim_canon.c \
                $(wildcard src/mailauth/dmarc.c src/mailauth/authres.c)
FUZZ_CFLAGS  := $(CSTD) -g -O1 -fsanitize=fuzzer,address,undefined $(PKG_CFLAGS)
build/fuzz/%: fuzz/%.c fuzz/fuzz_check.h $(FUZZ_LIB_SRC) $(HDRS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -Isrc -o $@ $< $(FUZZ_LIB_SRC) $(LIBS)

# A crash, leak or timeout fails the target (the reproducer is left in
# build/fuzz/); the corpus grows in build/fuzz/corpus/ between runs.
fuzz: deps $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do n=$$(basename $$f); \
	  mkdir -p build/fuzz/corpus/$$n; \
	  echo "== $$n for $(FUZZ_SECONDS)s"; \
	  if ! $$f -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -artifact_prefix=build/fuzz/$$n- \
	      $$( [ -f fuzz/dict/$$n.dict ] && echo -dict=fuzz/dict/$$n.dict ) \
	      build/fuzz/corpus/$$n $$( [ -d fuzz/corpus/$$n ] && echo fuzz/corpus/$$n ) \
	      > build/fuzz/$$n.log 2>&1; then \
	    tail -n 40 build/fuzz/$$n.log; echo "FAILED: $$n (log: build/fuzz/$$n.log)"; exit 1; \
	  fi; grep -E '^Done' build/fuzz/$$n.log; \
	done

bench: deps all
	@sh scripts/bench.sh

# The unprivileged user the children run as (ternd falls back to nobody
# without it, and says so).
install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(REL)/ternd $(DESTDIR)$(PREFIX)/sbin/ternd
	install -m 755 $(REL)/tern $(DESTDIR)$(PREFIX)/bin/tern
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && ! getent passwd tern >/dev/null; then \
	  useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin tern && \
	  echo "created system user tern"; fi

clean:
	rm -rf build

.SECONDARY:
