# The kernel module qkd_keystore.ko, built against $(KDIR) (Debian's 6.1 headers by
# default) into build/kmod/. Kbuild writes its objects beside the sources, so the
# sources are mirrored into build/kmod/ as symlinks and the tree stays clean.
KMOD_DIR  := build/kmod
KMOD      := $(KMOD_DIR)/qkd_keystore.ko
KMOD_SRCS := Kbuild $(wildcard kernel/*.c kernel/*.h kernel/uapi/*.h)

.PHONY: module FORCE
module: $(KMOD)

$(KMOD): $(KMOD_SRCS) FORCE
	@mkdir -p $(KMOD_DIR)/kernel/uapi
	@for f in $(KMOD_SRCS); do \
		ln -sfn $(CURDIR)/$$f $(KMOD_DIR)/$$f; \
	done
	$(MAKE) -C $(KDIR) M=$(CURDIR)/$(KMOD_DIR) modules

ifneq ($(SAN),1)
all: $(KMOD)
endif

# Kernel tests (run inside QEMU by tests/kernel/run-all): tests/kernel/test-*.c ->
# $(B)/ktests/test-*, kselftest harness, linked with the key store client.
KTEST_SRCS := $(wildcard tests/kernel/test-*.c)
KTEST_BINS := $(patsubst tests/kernel/%.c,$(B)/ktests/%,$(KTEST_SRCS))

$(B)/ktests/%: $(B)/tests/kernel/%.o $(B)/keystore/lib/qksc.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lkeyutils

ifneq ($(SAN),1)
all: $(KTEST_BINS)
endif
# The sink test writes frames with libqkd.
$(B)/ktests/test-ks-sink: $(LIBQKD)
# The harness's EXPECT_EQ(literal, unsigned) compares int with unsigned.
$(B)/tests/kernel/%.o: CFLAGS += -Wno-sign-compare

# Kernel tests in QEMU (also part of `make check` through tests/run).
vm-check: all
	tests/run --only 'vm:*'
