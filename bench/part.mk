# Benchmarks: bench/bench-*.c -> $(B)/bench/bench-*, linked with libqkd; bench/run runs them all.
BENCH_SRCS := $(wildcard bench/bench-*.c)
BENCH_BINS += $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRCS))

$(B)/bench/%: $(B)/bench/%.o $(LIBQKD)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
