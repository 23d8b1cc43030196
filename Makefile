# vmbox — one binary; `make`, `make asan`, `make test`, `make demo`.
CC      ?= cc
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo 0.1.0)
PKGS    := libcurl libarchive jansson libcrypto ext2fs com_err libseccomp libnl-3.0 libnl-route-3.0 libzstd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libcurl, libarchive and libcrypto are dlopened on first use (lib/dl_*.c):
# linked, they cost every run ~40M cycles in ld.so.
DL_PKGS    := libcurl libarchive libcrypto
PKG_LIBS   := $(shell pkg-config --libs $(filter-out $(DL_PKGS),$(PKGS)) 2>/dev/null) -ldl -lpthread
# Symbols bound at exec, not on first call: a run forks the CLI three times
# (monitor, box PID 1, command) and each lazy binding there writes the GOT,
# a copy-on-write fault per page per process (~50 faults a run).
LDFLAGS_BIN := -Wl,-z,now
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -DVMBOX_VERSION=\"$(VERSION)\" $(PKG_CFLAGS)
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

B       := build
# KVM_SRC= (empty) builds without the kvm backend (it then says "not built").
KVM_SRC ?= $(wildcard backends/kvm/*.c backends/kvm/virtio/*.c)
LIB_SRC := $(wildcard lib/*.c image/*.c box/*.c backends/*.c backends/ns/*.c \
             backends/sentry/*.c net/*.c snapshot/*.c) $(KVM_SRC)
CMD_SRC := $(wildcard cmd/*.c)
UNIT_SRC := $(wildcard tests/unit/*.c)
HDRS    := $(wildcard lib/*.h image/*.h box/*.h cmd/*.h backends/*.h backends/*/*.h backends/kvm/virtio/*.h net/*.h snapshot/*.h)
BUSYBOX_TAR := $(B)/busybox-image.tar
# The kvm backend links vmbox-init (static) into vmbox; -u pulls kvm.o and
# the VMM core out of the archive (backend.c and kvm.c refer to them weakly).
comma := ,
KVM_OBJ := $(if $(strip $(KVM_SRC)),$(B)/obj/guest_init.o)
KVM_LDFLAGS := $(if $(strip $(KVM_SRC)),-Wl$(comma)-u$(comma)backend_kvm_ops -Wl$(comma)-u$(comma)vmm__run)

all: $(B)/vmbox

# --- normal build -----------------------------------------------------------
$(B)/obj/%.o: %.c $(HDRS) | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/obj/builtin.o: image/builtin.S $(BUSYBOX_TAR)
	@mkdir -p $(dir $@)
	$(CC) -c -DBUSYBOX_TAR='"$(abspath $(BUSYBOX_TAR))"' -o $@ $<

$(B)/libvmbox.a: $(LIB_SRC:%.c=$(B)/obj/%.o) $(B)/obj/builtin.o $(KVM_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The release binary links its libraries statically (glibc stays shared:
# the dlopen'ed ones need it): each run execs vmbox once, and ld.so mapping
# and relocating five more objects was ~1 ms of a 25 ms `run --rm`.
STATIC_LIBS := $(shell pkg-config --libs $(filter-out $(DL_PKGS) libnl-3.0 libnl-route-3.0,$(PKGS)) 2>/dev/null)
$(B)/vmbox: $(CMD_SRC:%.c=$(B)/obj/%.o) $(B)/libvmbox.a
	$(CC) $(CFLAGS) -o $@ $(KVM_LDFLAGS) $(LDFLAGS_BIN) $^ -Wl,-Bstatic $(STATIC_LIBS) -Wl,-Bdynamic $(PKG_LIBS)

# vmbox looks for its own guest kernel (`make kernel`) in this build's kernel/.
KERNEL_DIR_DEF := -DVMBOX_KERNEL_DIR='"$(abspath $(B))/kernel"'
$(B)/obj/backends/kvm/kernel.o $(B)/asan/obj/backends/kvm/kernel.o: CFLAGS += $(KERNEL_DIR_DEF)

# --- ASan/UBSan build (used by the test suites) ---------------------------------
$(B)/asan/obj/%.o: %.c $(HDRS) | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ASAN_FLAGS) -c -o $@ $<

$(B)/asan/libvmbox.a: $(LIB_SRC:%.c=$(B)/asan/obj/%.o) $(B)/obj/builtin.o $(KVM_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/asan/vmbox: $(CMD_SRC:%.c=$(B)/asan/obj/%.o) $(B)/asan/libvmbox.a
	$(CC) $(CFLAGS) $(ASAN_FLAGS) -o $@ $(KVM_LDFLAGS) $(LDFLAGS_BIN) $^ $(PKG_LIBS)

asan: $(B)/asan/vmbox

# --- the embedded busybox image -----------------------------------------------
$(BUSYBOX_TAR): scripts/mkbusybox.sh | deps
	@mkdir -p $(B)
	scripts/mkbusybox.sh $@

# --- vmbox-init: PID 1 of kvm guests, static, embedded in vmbox ----------------
GUEST_SRC := $(wildcard backends/guest/*.c)
$(B)/vmbox-init: $(GUEST_SRC) $(wildcard backends/guest/*.h)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -O2 -static -s -o $@ $(GUEST_SRC)

$(B)/obj/guest_init.o: backends/kvm/guest_init.S $(B)/vmbox-init
	@mkdir -p $(dir $@)
	$(CC) -c -DVMBOX_INIT='"$(abspath $(B)/vmbox-init)"' -o $@ $<

# --- unit tests: one binary per tests/unit/*.c, linked against the ASan library --
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(B)/unit/%)
$(B)/unit/%: tests/unit/%.c $(B)/asan/libvmbox.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ASAN_FLAGS) -o $@ $(KVM_LDFLAGS) $< $(B)/asan/libvmbox.a $(PKG_LIBS)

# Helper programs the bats suites drive (tests/tools/*.c), also ASan.
TOOL_BINS := $(patsubst tests/tools/%.c,$(B)/tools/%,$(wildcard tests/tools/*.c))
$(B)/tools/%: tests/tools/%.c $(B)/asan/libvmbox.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ASAN_FLAGS) -o $@ $(KVM_LDFLAGS) $< $(B)/asan/libvmbox.a $(PKG_LIBS)

# The VMM core's test /init (tests/kvm/inner/vmm.bats): static, no libvmbox.
$(B)/tools/vmm_guest_init: tests/kvm/vmm_guest_init.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -O2 -static -s -o $@ $<

unit: $(UNIT_BINS) $(TOOL_BINS) $(B)/tools/vmm_guest_init

# --- the minimal guest kernel (backends/guest/kernel/) ------------------------------
# Cached by scripts/kernel.sh (key: config fragment, source version, compiler).
kernel:
	scripts/kernel.sh $(abspath $(B))

# --- set-up, tests, demo ----------------------------------------------------------
deps:
	@scripts/deps.sh

test-deps:
	@scripts/deps.sh --test

test: test-deps
	$(MAKE) all asan unit kernel
	VMBOX_BUILD=$(B) tests/run.sh $(SUITES)

# Just the KVM suites (nested under QEMU/TCG here; native where /dev/kvm is).
KVM_SUITES := tests/kvm.bats tests/kvm_vmm.bats tests/kvm_blk.bats tests/kvm_vsock.bats tests/ns_cgroup2.bats \
              tests/kvm_kernel.bats tests/kvm_jail.bats tests/kvm_exec.bats tests/kvm_net.bats
test-kvm: test-deps
	$(MAKE) all asan unit kernel
	VMBOX_BUILD=$(B) tests/run.sh $(KVM_SUITES)

demo: all
	VMBOX=$(B)/vmbox BUSYBOX_TAR=$(BUSYBOX_TAR) scripts/demo.sh

# bench/create.sh times the backend's create alone: ns_run, optimized.
$(B)/bench/ns_run: tests/tools/ns_run.c $(B)/libvmbox.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(B)/libvmbox.a $(PKG_LIBS)

bench: test-deps all $(B)/bench/ns_run
	VMBOX=$(B)/vmbox bench/pull-flatten.sh
	VMBOX=$(B)/vmbox bench/start.sh
	VMBOX=$(B)/vmbox NS_RUN=$(B)/bench/ns_run bench/create.sh

# --- make fuzz: libFuzzer targets (tests/fuzz/fuzz_*.c), run by scripts/fuzz.sh ---
# Each target is compiled by clang together with tests/fuzz/fake_vmm.c
# (stand-ins for the VMM functions vmm.h declares), lib/err.c + lib/util.c,
# and the vmbox sources its FUZZ_SRC_<name> line lists.  A new target is its
# tests/fuzz/fuzz_<name>.c plus one such line, e.g.
#   FUZZ_SRC_fuzz_net := backends/kvm/virtio/ring.c backends/kvm/virtio/pci.c backends/kvm/virtio/net.c
FUZZ_CC      ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   := -std=gnu11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_LIBS    := $(shell pkg-config --libs libcrypto 2>/dev/null) -lpthread
FUZZ_COMMON  := tests/fuzz/fake_vmm.c lib/err.c lib/util.c
FUZZ_SRC_fuzz_ring  := backends/kvm/virtio/ring.c
FUZZ_SRC_fuzz_blk   := backends/kvm/virtio/ring.c backends/kvm/virtio/pci.c \
                       backends/kvm/virtio/blk.c backends/kvm/disk.c
FUZZ_SRC_fuzz_vsock := backends/kvm/virtio/ring.c backends/kvm/virtio/pci.c \
                       backends/kvm/virtio/vsock.c
FUZZ_SRC_fuzz_chan  := backends/kvm/chan.c
FUZZ_SRC_fuzz_net   := backends/kvm/virtio/ring.c backends/kvm/virtio/pci.c \
                       backends/kvm/virtio/net.c
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(B)/fuzz/bin/%,$(wildcard tests/fuzz/fuzz_*.c))

.SECONDEXPANSION:
$(B)/fuzz/bin/%: tests/fuzz/%.c $$(FUZZ_SRC_$$*) $(FUZZ_COMMON) $(HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(PKG_CFLAGS) -o $@ $< $(FUZZ_SRC_$*) $(FUZZ_COMMON) $(FUZZ_LIBS)

fuzz-deps:
	@scripts/deps.sh --fuzz

$(FUZZ_BINS): | fuzz-deps
fuzz: $(FUZZ_BINS)
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh $(abspath $(B))/fuzz $(FUZZ_BINS)

# bench/kvm-*.sh: inside the nested guest (tests/kvm/run-nested.sh), where
# /dev/kvm works; the release vmbox and a release vmm_run (the VMM core
# alone, for boot-to-init and its memory), QEMU microvm as the peer.
$(B)/bench/vmm_run: tests/tools/vmm_run.c $(B)/libvmbox.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(KVM_LDFLAGS) $< $(B)/libvmbox.a $(PKG_LIBS)

bench-kvm: test-deps
	$(MAKE) all unit $(B)/bench/vmm_run
	VMBOX_BUILD=$(abspath $(B)) bench/kvm-nested.sh

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
	  --suppress=missingIncludeSystem --suppress=unknownMacro -I lib $(LIB_SRC) $(CMD_SRC)
	clang-format --dry-run --Werror $(LIB_SRC) $(CMD_SRC) $(HDRS)

clean:
	rm -rf $(B)

.PHONY: all asan unit kernel deps test-deps test test-kvm demo bench fuzz fuzz-deps lint clean
