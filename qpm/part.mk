# qpm: the QKD Protocol Manager daemon and its admin CLI.
# They link the control-plane helpers of libqkd directly (not the whole
# archive), and qpm links the DTLS-capable libcoap (OpenSSL) for remote admin.
QPM_SRCS    := qpm/qpm.c qpm/admin.c qpm/pipeline.c qpm/supervise.c qpm/persist.c
QPMCTL_SRCS := qpm/qpmctl.c
QPM_LIBOBJS := $(B)/userspace/lib/service-json.o $(B)/userspace/lib/service-client.o
QPM_LDLIBS  := $(filter-out -lcoap-3-notls,$(PKG_LIBS)) \
	       $(shell pkg-config --libs libcoap-3-openssl 2>/dev/null) -lm

$(B)/qpm/%.o: CFLAGS += -DQKD_BINDIR='"$(BINDIR)"' -DQKD_DATADIR='"$(DATADIR)"'

$(B)/bin/qpm: $(QPM_SRCS:%.c=$(B)/%.o) $(QPM_LIBOBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(QPM_LDLIBS)

$(B)/bin/qpmctl: $(QPMCTL_SRCS:%.c=$(B)/%.o) $(QPM_LIBOBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(QPM_LDLIBS)

BINS += $(B)/bin/qpm $(B)/bin/qpmctl

.PHONY: install-qpm-data
install: install-qpm-data
install-qpm-data:
	install -d $(DESTDIR)$(DATADIR)/examples
	install -m 0644 qpm/pipeline.xsd $(DESTDIR)$(DATADIR)/
	install -m 0644 qpm/examples/*.xml $(DESTDIR)$(DATADIR)/examples/
