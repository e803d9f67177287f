# One executable per directory: userspace/modules/NAME/*.c -> $(B)/bin/NAME
MODULE_NAMES := $(notdir $(patsubst %/,%,$(dir $(wildcard userspace/modules/*/*.c))))
MODULE_NAMES := $(sort $(MODULE_NAMES))

define module_rule
$(B)/bin/$(1): $(patsubst %.c,$(B)/%.o,$(wildcard userspace/modules/$(1)/*.c)) $(LIBQKD)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
BINS += $(B)/bin/$(1)
endef
$(foreach m,$(MODULE_NAMES),$(eval $(call module_rule,$(m))))
