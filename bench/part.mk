# Benchmarks: bench/bench-*.c -> $(B)/bench/bench-*, linked with libqkd; bench/run runs them all.
BENCH_SRCS := $(wildcard bench/bench-*.c)
BENCH_BINS += $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRCS))

$(B)/bench/%: $(B)/bench/%.o $(LIBQKD)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The man in the middle of bench-peer-flip.sh (not a benchmark itself: no bench- prefix).
BENCH_BINS += $(B)/bench/flip-relay

$(B)/bench/flip-relay: $(B)/bench/flip-relay.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^
