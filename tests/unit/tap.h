/* A tiny TAP producer for the unit-test binaries: tests/run.sh counts the
 * "ok" / "not ok" lines together with the bats suites'. */
#ifndef VMBOX_TESTS_TAP_H
#define VMBOX_TESTS_TAP_H

#include <stdio.h>

static int tap__n, tap__failed;

#define TAP_OK(cond, ...)                                                                          \
  do {                                                                                             \
    int ok_ = (cond) ? 1 : 0;                                                                      \
    printf("%sok %d - ", ok_ ? "" : "not ", ++tap__n);                                             \
    printf(__VA_ARGS__);                                                                           \
    printf("\n");                                                                                  \
    if (!ok_) {                                                                                    \
      tap__failed++;                                                                               \
      printf("# failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);                                \
    }                                                                                              \
  } while (0)

/* Call last: prints the plan and gives main's exit status. */
static inline int tap__done(void)
{
  printf("1..%d\n", tap__n);
  return tap__failed ? 1 : 0;
}

#endif
