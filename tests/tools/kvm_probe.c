/* kvm_probe: proves that /dev/kvm really executes guest code.
 *
 * Opens /dev/kvm, checks the API version, creates a VM with 64 KiB of RAM
 * and one or more vCPUs, and runs a few bytes of real-mode code on each:
 *
 *   mov dx, 0x10 ; out dx, al      -> "hello" I/O exit, al = 0x42 + vcpu id
 *   inc dx ; mov cx, N
 *   L: out dx, al ; loop L         -> N timed I/O exits on port 0x11
 *   hlt                            -> HLT exit
 *
 * Each exit is checked against what the code must produce, and the time
 * between consecutive port-0x11 exits (one full userspace -> guest -> userspace
 * round trip) is reported.  Output is line-oriented "key=value" so the test
 * suites can grep it; the last line is "kvm_probe: ok" on success.
 *
 * Usage: kvm_probe [--iters N] [--vcpus N] [--dev PATH]
 * Exit: 0 ok, 1 guest misbehaved, 2 setup/usage error, 3 watchdog fired. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define GUEST_MEM 0x10000
#define CODE_GPA 0x1000
#define HELLO_PORT 0x10
#define LOOP_PORT 0x11
#define HELLO_BASE 0x42
#define MAX_VCPUS 8
#define WATCHDOG_S 60

struct vcpu {
  int id, fd;
  struct kvm_run *run;
  size_t run_size;
  unsigned iters;
  pthread_t thread;
  /* results */
  int failed;
  char why[256];
  unsigned io_exits, loop_exits, hlt_exits;
  uint64_t *rtt_ns; /* one per loop exit after the first */
};

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_alarm(int sig)
{
  (void)sig;
  static const char msg[] = "kvm_probe: watchdog: guest did not finish in time\n";
  ssize_t r = write(2, msg, sizeof msg - 1);
  (void)r;
  _exit(3);
}

static size_t emit_code(uint8_t *p, unsigned iters)
{
  /* clang-format off */
  const uint8_t code[] = {
      0xba, HELLO_PORT, 0x00,          /* mov dx, HELLO_PORT */
      0xee,                            /* out dx, al */
      0x42,                            /* inc dx */
      0xb9, iters & 0xff, iters >> 8,  /* mov cx, iters */
      0xee,                            /* L: out dx, al */
      0xe2, 0xfd,                      /* loop L */
      0xf4,                            /* hlt */
  };
  /* clang-format on */
  memcpy(p, code, sizeof code);
  return sizeof code;
}

static int vcpu__setup(struct vcpu *v, int vm, size_t run_size)
{
  struct kvm_sregs sregs;
  struct kvm_regs regs;

  v->fd = ioctl(vm, KVM_CREATE_VCPU, v->id);
  if (v->fd < 0) {
    fprintf(stderr, "kvm_probe: KVM_CREATE_VCPU %d: %s\n", v->id, strerror(errno));
    return -1;
  }
  v->run_size = run_size;
  v->run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
  if (v->run == MAP_FAILED) {
    fprintf(stderr, "kvm_probe: mmap kvm_run: %s\n", strerror(errno));
    return -1;
  }
  if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0) {
    fprintf(stderr, "kvm_probe: KVM_GET_SREGS: %s\n", strerror(errno));
    return -1;
  }
  sregs.cs.base = 0;
  sregs.cs.selector = 0;
  if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0) {
    fprintf(stderr, "kvm_probe: KVM_SET_SREGS: %s\n", strerror(errno));
    return -1;
  }
  memset(&regs, 0, sizeof regs);
  regs.rip = CODE_GPA;
  regs.rax = HELLO_BASE + v->id;
  regs.rflags = 0x2;
  if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0) {
    fprintf(stderr, "kvm_probe: KVM_SET_REGS: %s\n", strerror(errno));
    return -1;
  }
  return 0;
}

/* Checks one I/O exit against what the guest code must do at this point. */
static int vcpu__check_io(struct vcpu *v)
{
  struct kvm_run *r = v->run;
  uint8_t data = *((uint8_t *)r + r->io.data_offset);
  unsigned want_port = v->io_exits == 0 ? HELLO_PORT : LOOP_PORT;

  if (r->io.direction != KVM_EXIT_IO_OUT || r->io.size != 1 || r->io.count != 1 ||
      r->io.port != want_port || data != HELLO_BASE + v->id) {
    snprintf(v->why, sizeof v->why,
             "unexpected I/O exit #%u: dir=%s port=0x%x size=%u count=%u data=0x%02x "
             "(want out port=0x%x size=1 data=0x%02x)",
             v->io_exits, r->io.direction == KVM_EXIT_IO_OUT ? "out" : "in", r->io.port, r->io.size,
             r->io.count, data, want_port, HELLO_BASE + v->id);
    return -1;
  }
  if (v->io_exits == 0)
    printf("kvm_probe: vcpu=%d io_exit port=0x%x dir=out size=1 data=0x%02x\n", v->id, r->io.port,
           data);
  return 0;
}

static void *vcpu__loop(void *arg)
{
  struct vcpu *v = arg;
  uint64_t last = 0;

  for (;;) {
    if (ioctl(v->fd, KVM_RUN, 0) < 0) {
      snprintf(v->why, sizeof v->why, "KVM_RUN: %s", strerror(errno));
      v->failed = 1;
      return NULL;
    }
    uint64_t t = now_ns();
    switch (v->run->exit_reason) {
    case KVM_EXIT_IO:
      if (vcpu__check_io(v) < 0) {
        v->failed = 1;
        return NULL;
      }
      if (v->io_exits++ > 0) {
        if (v->loop_exits > 0 && v->loop_exits - 1 < v->iters)
          v->rtt_ns[v->loop_exits - 1] = t - last;
        v->loop_exits++;
        last = t;
      }
      break;
    case KVM_EXIT_HLT:
      v->hlt_exits++;
      if (v->loop_exits != v->iters) {
        snprintf(v->why, sizeof v->why, "HLT after %u loop exits, want %u", v->loop_exits,
                 v->iters);
        v->failed = 1;
      }
      return NULL;
    case KVM_EXIT_FAIL_ENTRY:
      snprintf(v->why, sizeof v->why, "KVM_EXIT_FAIL_ENTRY reason=0x%llx",
               (unsigned long long)v->run->fail_entry.hardware_entry_failure_reason);
      v->failed = 1;
      return NULL;
    case KVM_EXIT_INTERNAL_ERROR:
      snprintf(v->why, sizeof v->why, "KVM_EXIT_INTERNAL_ERROR suberror=%u",
               v->run->internal.suberror);
      v->failed = 1;
      return NULL;
    default:
      snprintf(v->why, sizeof v->why, "unexpected exit_reason=%u", v->run->exit_reason);
      v->failed = 1;
      return NULL;
    }
  }
}

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int report(struct vcpu *v)
{
  if (v->failed) {
    printf("kvm_probe: vcpu=%d FAILED: %s\n", v->id, v->why);
    return -1;
  }
  printf("kvm_probe: vcpu=%d io_exits=%u hlt_exits=%u\n", v->id, v->io_exits, v->hlt_exits);
  unsigned n = v->iters - 1; /* the first loop exit has no predecessor */
  if (n > 0) {
    qsort(v->rtt_ns, n, sizeof *v->rtt_ns, cmp_u64);
    printf("kvm_probe: vcpu=%d io_round_trip_ns median=%llu min=%llu max=%llu samples=%u\n", v->id,
           (unsigned long long)v->rtt_ns[n / 2], (unsigned long long)v->rtt_ns[0],
           (unsigned long long)v->rtt_ns[n - 1], n);
  }
  return 0;
}

static int usage(void)
{
  fprintf(stderr, "usage: kvm_probe [--iters 2..65535] [--vcpus 1..%d] [--dev PATH]\n", MAX_VCPUS);
  return 2;
}

int main(int argc, char **argv)
{
  const char *dev = "/dev/kvm";
  unsigned iters = 1000, nvcpus = 1;
  struct vcpu vcpus[MAX_VCPUS];
  int kvm, vm, rc = 0;

  for (int i = 1; i < argc; i++) {
    if (i + 1 < argc && strcmp(argv[i], "--iters") == 0)
      iters = (unsigned)strtoul(argv[++i], NULL, 0);
    else if (i + 1 < argc && strcmp(argv[i], "--vcpus") == 0)
      nvcpus = (unsigned)strtoul(argv[++i], NULL, 0);
    else if (i + 1 < argc && strcmp(argv[i], "--dev") == 0)
      dev = argv[++i];
    else
      return usage();
  }
  if (iters < 2 || iters > 0xffff || nvcpus < 1 || nvcpus > MAX_VCPUS)
    return usage();
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGALRM, on_alarm);
  alarm(WATCHDOG_S);

  kvm = open(dev, O_RDWR | O_CLOEXEC);
  if (kvm < 0) {
    fprintf(stderr, "kvm_probe: cannot open %s: %s (is kvm loaded and the device node there?)\n",
            dev, strerror(errno));
    return 2;
  }
  int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
  printf("kvm_probe: api_version=%d\n", api);
  if (api != KVM_API_VERSION) {
    fprintf(stderr, "kvm_probe: KVM_GET_API_VERSION=%d, want %d\n", api, KVM_API_VERSION);
    return 2;
  }
  if (ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) <= 0) {
    fprintf(stderr, "kvm_probe: KVM_CAP_USER_MEMORY missing\n");
    return 2;
  }
  int max_vcpus = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
  printf("kvm_probe: recommended_max_vcpus=%d\n", max_vcpus);

  uint64_t t0 = now_ns();
  vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) {
    fprintf(stderr, "kvm_probe: KVM_CREATE_VM: %s\n", strerror(errno));
    return 2;
  }
  printf("kvm_probe: create_vm_ns=%llu\n", (unsigned long long)(now_ns() - t0));

  uint8_t *mem = mmap(NULL, GUEST_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    fprintf(stderr, "kvm_probe: mmap guest memory: %s\n", strerror(errno));
    return 2;
  }
  size_t code_len = emit_code(mem + CODE_GPA, iters);
  printf("kvm_probe: guest_code_bytes=%zu\n", code_len);
  struct kvm_userspace_memory_region region = {
      .slot = 0, .guest_phys_addr = 0, .memory_size = GUEST_MEM, .userspace_addr = (uintptr_t)mem};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
    fprintf(stderr, "kvm_probe: KVM_SET_USER_MEMORY_REGION: %s\n", strerror(errno));
    return 2;
  }
  int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size < (int)sizeof(struct kvm_run)) {
    fprintf(stderr, "kvm_probe: KVM_GET_VCPU_MMAP_SIZE=%d: %s\n", run_size, strerror(errno));
    return 2;
  }

  memset(vcpus, 0, sizeof vcpus);
  for (unsigned i = 0; i < nvcpus; i++) {
    vcpus[i].id = (int)i;
    vcpus[i].iters = iters;
    vcpus[i].rtt_ns = calloc(iters, sizeof(uint64_t));
    if (!vcpus[i].rtt_ns || vcpu__setup(&vcpus[i], vm, (size_t)run_size) < 0)
      return 2;
  }
  t0 = now_ns();
  for (unsigned i = 0; i < nvcpus; i++)
    if ((errno = pthread_create(&vcpus[i].thread, NULL, vcpu__loop, &vcpus[i])) != 0) {
      fprintf(stderr, "kvm_probe: pthread_create: %s\n", strerror(errno));
      return 2;
    }
  for (unsigned i = 0; i < nvcpus; i++)
    pthread_join(vcpus[i].thread, NULL);
  printf("kvm_probe: run_ns=%llu vcpus=%u iters=%u\n", (unsigned long long)(now_ns() - t0), nvcpus,
         iters);

  for (unsigned i = 0; i < nvcpus; i++) {
    if (report(&vcpus[i]) < 0)
      rc = 1;
    munmap(vcpus[i].run, vcpus[i].run_size);
    close(vcpus[i].fd);
    free(vcpus[i].rtt_ns);
  }
  close(vm);
  close(kvm);
  munmap(mem, GUEST_MEM);
  printf("kvm_probe: %s\n", rc ? "FAILED" : "ok");
  return rc;
}
