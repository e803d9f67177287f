# qkd-ppk: the strongSwan RFC 8784 PPK feeder (keystore/qkd-ppk/*.c -> $(B)/bin/qkd-ppk).
# Links libkeyutils for the keyring and libnl-genl (already in PKGS) for the key store.
PPK_SRCS := $(wildcard keystore/qkd-ppk/*.c)

$(B)/bin/qkd-ppk: $(PPK_SRCS:%.c=$(B)/%.o) $(LIBQKD)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lkeyutils

BINS += $(B)/bin/qkd-ppk
