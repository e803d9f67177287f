# qkdpipe top-level Makefile.
#
#   make              build libqkd, every module, qpm, keystore tools and the kernel module
#   make check        every test: unit + integration (normal and ASan/UBSan builds), fuzz smoke,
#                     kernel and end-to-end tests in QEMU; ends with "N passed, N failed"
#   make vm-check     only the kernel tests in QEMU
#   make bench        every benchmark in bench/
#   make fuzz         longer fuzz runs
#   make install      honours DESTDIR and PREFIX
#
# Userspace objects go to $(B) (build/ by default, build-san/ with SAN=1).
# Each part of the tree adds itself through a fragment: */part.mk.

PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    ?= $(PREFIX)/bin
LIBDIR    ?= $(PREFIX)/lib
INCDIR    ?= $(PREFIX)/include
DATADIR   ?= $(PREFIX)/share/qkdpipe
MANDIR    ?= $(PREFIX)/share/man

KVER      ?= $(shell ls /lib/modules 2>/dev/null | grep -- '-amd64$$' | sort -V | tail -n 1)
KDIR      ?= /lib/modules/$(KVER)/build

SAN       ?= 0
ifeq ($(SAN),1)
B         ?= build-san
SANFLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
B         ?= build
SANFLAGS  :=
endif

CC        ?= cc
NPROC     := $(shell nproc 2>/dev/null || echo 2)
PKGS      := liburing libcoap-3-notls libnl-genl-3.0 libxml-2.0
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS    ?= -O2 -g
CFLAGS    += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE \
	     -fstack-protector-strong -D_FORTIFY_SOURCE=2 -pthread $(SANFLAGS) \
	     -Iuserspace/include -I$(B)/include $(PKG_CFLAGS)
LDFLAGS   += -pthread $(SANFLAGS)
LDLIBS    += $(PKG_LIBS) -lm -lgf2x

# Filled by the fragments.
BINS      :=
TEST_BINS :=
BENCH_BINS :=
FUZZ_BINS :=

.PHONY: all check unit-check vm-check bench fuzz install clean demo module headers
all: headers

HARNESS := $(B)/include/kselftest_harness.h
headers: $(HARNESS)
$(HARNESS):
	@scripts/extract-kselftest $(B)/include

include userspace/lib/part.mk
-include userspace/modules/part.mk
-include keystore/part.mk
-include keystore/ppk.mk
-include keystore/kme.mk
-include qpm/part.mk
-include tests/part.mk
-include bench/part.mk
-include kernel/part.mk

all: $(BINS) $(TEST_BINS) $(BENCH_BINS)

$(B)/%.o: %.c | headers
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

-include $(shell find $(B) -name '*.d' 2>/dev/null)

# The whole suite. tests/run prints the final "N passed, N failed" line.
check:
	$(MAKE) -j$(NPROC) all
	$(MAKE) -j$(NPROC) SAN=1 all
	tests/run

unit-check: all
	tests/run --no-vm

bench: all
	bench/run

demo: all
	scripts/demo

DOCDIR    ?= $(PREFIX)/share/doc/qkdpipe
MODDIR    ?= /lib/modules/$(KVER)/extra

# Programs, libqkd and its headers, documentation, and the kernel module
# (into $(MODDIR); run depmod -a $(KVER) afterwards, or use dkms.conf).
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR) $(DESTDIR)$(LIBDIR) \
		$(DESTDIR)$(INCDIR)/qkd $(DESTDIR)$(DOCDIR)
	for b in $(BINS); do install -m 0755 $$b $(DESTDIR)$(BINDIR)/; done
	install -m 0644 $(LIBQKD) $(DESTDIR)$(LIBDIR)/
	install -m 0644 userspace/include/qkd/*.h $(DESTDIR)$(INCDIR)/qkd/
	install -m 0644 README.md Documentation/*.md $(DESTDIR)$(DOCDIR)/
	if [ -f build/kmod/qkd_keystore.ko ]; then \
		install -d $(DESTDIR)$(MODDIR) && \
		install -m 0644 build/kmod/qkd_keystore.ko $(DESTDIR)$(MODDIR)/; \
	fi

clean:
	rm -rf build build-san
