# Unit and integration test programs: tests/unit/test-*.c and tests/integration/test-*.c
# -> $(B)/tests/test-*, linked with libqkd. They use the kselftest harness and print TAP.
TEST_SRCS := $(wildcard tests/unit/test-*.c tests/integration/test-*.c)
TEST_BINS += $(patsubst %.c,$(B)/tests/%,$(notdir $(TEST_SRCS)))

# tests/lib/*.c: helpers the test programs share (processes, ports, pools, frame files).
TESTLIB_OBJS := $(patsubst %.c,$(B)/%.o,$(wildcard tests/lib/*.c))
$(B)/tests/unit/%.o $(B)/tests/integration/%.o $(B)/tests/lib/%.o: CFLAGS += -Itests/lib

define test_rule
$(B)/tests/$(basename $(notdir $(1))): $(B)/$(basename $(1)).o $(TESTLIB_OBJS) $(LIBQKD)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach t,$(TEST_SRCS),$(eval $(call test_rule,$(t))))

# Fuzz targets (libFuzzer): tests/fuzz/fuzz-*.c -> build-fuzz/fuzz-*, with every libqkd source.
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz-*.c)
FUZZ_FLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
	      -Iuserspace/include $(PKG_CFLAGS)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(FUZZ_SRCS))

build-fuzz/%: tests/fuzz/%.c $(LIBQKD_SRCS) $(wildcard userspace/include/qkd/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -mpclmul -msse4.1 -o $@ $< $(LIBQKD_SRCS) $(PKG_LIBS) -lm -pthread

.PHONY: fuzz-build
fuzz-build: $(FUZZ_BINS)
fuzz: fuzz-build
	@for f in $(FUZZ_BINS); do tests/fuzz/smoke $$f 300; done
ifneq ($(SAN),1)
all: fuzz-build
endif
