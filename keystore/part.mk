# Userspace side of the kernel key store.
#   keystore/lib/qksc.c      generic-netlink client (libnl-genl) shared by the tools below
#   keystore/qkdctl/*.c   -> $(B)/bin/qkdctl
QKSC_OBJ := $(B)/keystore/lib/qksc.o
QKDCTL_SRCS := $(wildcard keystore/qkdctl/*.c)

$(B)/bin/qkdctl: $(QKDCTL_SRCS:%.c=$(B)/%.o) $(QKSC_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

BINS += $(B)/bin/qkdctl

# The sink (userspace/modules/qkd-ks-sink) pushes keys with the same client.
ifneq ($(wildcard userspace/modules/qkd-ks-sink/*.c),)
$(B)/bin/qkd-ks-sink: $(QKSC_OBJ)
endif
