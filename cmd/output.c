/* Output shared by the subcommands: docker-style aligned tables and JSON. */
#include <string.h>

#include "../lib/util.h"
#include "cli.h"

void out__json(json_t *j)
{
  json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  fputc('\n', stdout);
  json_decref(j);
}

struct table {
  size_t cols, rows, cap;
  char **cells; /* rows * cols, row 0 = headers */
};

struct table *table__new(const char *const *headers)
{
  struct table *t = xcalloc(1, sizeof(*t));
  while (headers[t->cols])
    t->cols++;
  table__row(t, headers);
  return t;
}

void table__row(struct table *t, const char *const *cells)
{
  if (t->rows == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 16;
    t->cells = xrealloc(t->cells, t->cap * t->cols * sizeof(char *));
  }
  for (size_t i = 0; i < t->cols; i++)
    t->cells[t->rows * t->cols + i] = xstrdup(cells[i] ? cells[i] : "");
  t->rows++;
}

void table__print(struct table *t)
{
  size_t *w = xcalloc(t->cols, sizeof(size_t));
  for (size_t r = 0; r < t->rows; r++)
    for (size_t c = 0; c < t->cols; c++) {
      size_t l = strlen(t->cells[r * t->cols + c]);
      if (l > w[c])
        w[c] = l;
    }
  for (size_t r = 0; r < t->rows; r++) {
    for (size_t c = 0; c < t->cols; c++) {
      const char *s = t->cells[r * t->cols + c];
      if (c + 1 == t->cols)
        fputs(s, stdout);
      else
        printf("%-*s   ", (int)w[c], s);
    }
    fputc('\n', stdout);
  }
  for (size_t i = 0; i < t->rows * t->cols; i++)
    free(t->cells[i]);
  free(t->cells);
  free(w);
  free(t);
}
