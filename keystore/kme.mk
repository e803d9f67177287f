# qkd-kme: the ETSI GS QKD 014 key-management entity (keystore/qkd-kme/*.c -> $(B)/bin/qkd-kme).
# Links libmicrohttpd (HTTP), GnuTLS (TLS, certificates, SHA-256) and jansson (JSON).
KME_PKGS := libmicrohttpd gnutls jansson
KME_SRCS := $(wildcard keystore/qkd-kme/*.c)
KME_LIB_SRCS := $(filter-out keystore/qkd-kme/main.c keystore/qkd-kme/server.c \
		  keystore/qkd-kme/identity.c keystore/qkd-kme/keysrc-nl.c,$(KME_SRCS))
$(KME_SRCS:%.c=$(B)/%.o): CFLAGS += $(shell pkg-config --cflags $(KME_PKGS))

$(B)/bin/qkd-kme: $(KME_SRCS:%.c=$(B)/%.o) $(QKSC_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(shell pkg-config --libs $(KME_PKGS))

BINS += $(B)/bin/qkd-kme

# The fuzz target drives the API (parser and handler) on a key source in memory.
build-fuzz/fuzz-kme: tests/fuzz/fuzz-kme.c $(KME_LIB_SRCS) $(wildcard keystore/qkd-kme/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -o $@ $< $(KME_LIB_SRCS) $(shell pkg-config --libs gnutls jansson) -pthread
