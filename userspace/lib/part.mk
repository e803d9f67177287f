# libqkd: every .c in userspace/lib/ goes into $(B)/libqkd.a
LIBQKD_SRCS := $(wildcard userspace/lib/*.c)
LIBQKD_OBJS := $(LIBQKD_SRCS:%.c=$(B)/%.o)
LIBQKD      := $(B)/libqkd.a

$(LIBQKD): $(LIBQKD_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

# Objects that use PCLMULQDQ are compiled for it and only called after a CPUID check.
$(B)/userspace/lib/%-clmul.o: CFLAGS += -mpclmul -msse4.1
