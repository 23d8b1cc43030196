/* Parallel blob downloads (curl multi) straight into the store's blob
 * writers, which hash as they write.  An interrupted blob keeps its
 * ROOT/tmp/HEX.partial and continues with a Range request, here (bounded
 * retries) or in a later pull after a kill -9. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "registry_int.h"

enum xstate { X_PENDING, X_ACTIVE, X_DONE };

struct xfer {
  struct blob_job *job;
  struct pull_progress *prog;
  enum xstate state;
  struct blob_writer *w;
  CURL *h;
  struct curl_slist *hdrs;
  struct http_resp resp; /* headers, and the body of an error response */
  int attempts;
  uint64_t not_before_ns; /* backoff before the next attempt */
  bool body_started;
  bool bad_range;     /* a 206 that does not continue where our partial ends */
  vmbox_error_t werr; /* a failure inside the write callback; always fatal */
  char errbuf[CURL_ERROR_SIZE];
};

struct fetch {
  struct store *st;
  struct reg_session *s;
  const struct pull_opts *opts;
  struct xfer *x;
  struct pull_progress *prog;
  size_t n, active;
  bool drop_partials; /* a local write failed (disk full...): keep nothing */
  CURLM *m;
  uint64_t last_report_ns;
};

static void report(struct fetch *f, bool force)
{
  if (!f->opts->progress)
    return;
  uint64_t now = util__now_ns();
  if (!force && now - f->last_report_ns < 100000000ULL)
    return;
  f->last_report_ns = now;
  f->opts->progress(f->prog, f->n, f->opts->progress_opaque);
}

static uint64_t declared_size(const struct xfer *x)
{
  return x->job->desc->size > 0 ? (uint64_t)x->job->desc->size : 0;
}

/* A 206 must start exactly at our offset; otherwise drop the partial and let
 * the next attempt fetch the blob whole. */
static bool range_continues(struct xfer *x)
{
  unsigned long long start = 0;
  const char *cr = x->resp.content_range;
  if (cr && sscanf(cr, "bytes %llu-", &start) == 1 && start == blob_writer__offset(x->w))
    return true;
  log__debug("%s: bad Content-Range %s", x->job->desc->digest, cr ? cr : "(none)");
  x->bad_range = true;
  if (blob_writer__restart(x->w, &x->werr) < 0)
    x->bad_range = false; /* werr is set: fatal */
  return false;
}

static size_t xfer_write(char *buf, size_t sz, size_t n, void *opaque)
{
  struct xfer *x = opaque;
  size_t len = sz * n;
  if (!x->body_started) {
    x->body_started = true;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->resp.status);
    /* The server ignored our Range and sends the whole blob: start over. */
    if (x->resp.status == 200 && blob_writer__offset(x->w) > 0) {
      log__debug("%s: range ignored, restarting", x->job->desc->digest);
      if (blob_writer__restart(x->w, &x->werr) < 0)
        return 0;
    }
    if (x->resp.status == 206 && !range_continues(x))
      return 0;
  }
  if (x->resp.status != 200 && x->resp.status != 206) {
    /* an error body: keep a little of it for the message */
    size_t room = x->resp.len < 4096 ? 4096 - x->resp.len : 0;
    size_t take = len < room ? len : room;
    x->resp.body = xrealloc(x->resp.body, x->resp.len + take + 1);
    memcpy(x->resp.body + x->resp.len, buf, take);
    x->resp.len += take;
    x->resp.body[x->resp.len] = '\0';
    return len;
  }
  if (blob_writer__offset(x->w) + len > declared_size(x)) {
    vmbox_error_set(&x->werr, 0,
                    "blob %s is larger than the %" PRIu64 " bytes the manifest "
                    "declares",
                    x->job->desc->digest, declared_size(x));
    return 0;
  }
  if (blob_writer__write(x->w, buf, len, &x->werr) < 0)
    return 0;
  x->prog->done = blob_writer__offset(x->w);
  return len;
}

static int xfer_start(struct fetch *f, struct xfer *x, vmbox_error_t *err)
{
  const struct descriptor *d = x->job->desc;
  uint64_t off = blob_writer__offset(x->w);
  if (off > declared_size(x) && blob_writer__restart(x->w, err) < 0)
    return -1;
  off = blob_writer__offset(x->w);
  x->prog->done = off;
  x->prog->state = PULL_DOWNLOADING;
  x->attempts++;
  x->body_started = false;
  x->bad_range = false;
  http_resp__free(&x->resp);
  x->h = curl_easy_init();
  if (!x->h)
    return vmbox_error_set(err, 0, "cannot initialise libcurl");
  http__setup(x->h, x->errbuf);
  cleanup_free char *url = util__fmt("%s/v2/%s/blobs/%s", f->s->base, f->s->repository, d->digest);
  x->hdrs = reg_session__auth_header(f->s, NULL);
  if (off > 0) {
    cleanup_free char *range = util__fmt("Range: bytes=%" PRIu64 "-", off);
    x->hdrs = curl_slist_append(x->hdrs, range);
    log__debug("%s: resuming at %" PRIu64, d->digest, off);
  }
  curl_easy_setopt(x->h, CURLOPT_URL, url);
  curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
  curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, xfer_write);
  curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(x->h, CURLOPT_HEADERFUNCTION, http__header_cb);
  curl_easy_setopt(x->h, CURLOPT_HEADERDATA, &x->resp);
  curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
  log__debug("GET %s (attempt %d)", url, x->attempts);
  curl_multi_add_handle(f->m, x->h);
  x->state = X_ACTIVE;
  f->active++;
  return 0;
}

static void xfer_release(struct fetch *f, struct xfer *x)
{
  if (x->h) {
    curl_multi_remove_handle(f->m, x->h);
    curl_easy_cleanup(x->h);
    x->h = NULL;
    f->active--;
  }
  curl_slist_free_all(x->hdrs);
  x->hdrs = NULL;
}

/* Schedules another attempt, or gives up with `why` once they are spent. */
static int xfer_retry(struct xfer *x, vmbox_error_t *why, vmbox_error_t *err)
{
  if (x->attempts >= REG_BLOB_ATTEMPTS) {
    *err = steal_pointer(why);
    return vmbox_error_hint(err, "run the pull again: it resumes where this one stopped");
  }
  log__debug("%s: retrying: %s", x->job->desc->digest, (*why)->msg);
  vmbox_error_free(why);
  x->not_before_ns = util__now_ns() + (250000000ULL << x->attempts);
  x->state = X_PENDING;
  return 0;
}

static int xfer_commit(struct xfer *x, vmbox_error_t *err)
{
  struct blob_writer *w = steal_pointer(&x->w);
  if (blob_writer__commit(w, NULL, err) < 0)
    return -1;
  x->job->added = true;
  x->prog->state = PULL_DONE;
  x->prog->done = declared_size(x);
  x->state = X_DONE;
  return 0;
}

static int xfer_ok(struct fetch *f, struct xfer *x, vmbox_error_t *err)
{
  uint64_t got = blob_writer__offset(x->w);
  if (got < declared_size(x)) {
    vmbox_error_t why = NULL;
    vmbox_error_set(&why, 0, "blob %s from %s truncated at %" PRIu64 " of %" PRIu64 " bytes",
                    x->job->desc->digest, f->s->registry, got, declared_size(x));
    return xfer_retry(x, &why, err);
  }
  return xfer_commit(x, err);
}

static int xfer_http_status(struct fetch *f, struct xfer *x, long status, vmbox_error_t *err)
{
  const char *dg = x->job->desc->digest;
  vmbox_error_t why = NULL;
  switch (status) {
  case 401:
    /* tokens expire during long pulls; get a fresh one */
    if (!x->resp.challenge || auth__answer_challenge(f->s, x->resp.challenge, err) < 0)
      return x->resp.challenge ? -1 : auth__required_error(f->s, err);
    vmbox_error_set(&why, 0, "registry %s refused the token for blob %s", f->s->registry, dg);
    return xfer_retry(x, &why, err);
  case 416: /* our partial is no prefix the server agrees with */
    if (blob_writer__restart(x->w, err) < 0)
      return -1;
    vmbox_error_set(&why, 0, "registry %s rejected the range request for %s", f->s->registry, dg);
    return xfer_retry(x, &why, err);
  case 404:
    vmbox_error_set(err, 0, "blob %s not found in %s on registry %s", dg, f->s->repository,
                    f->s->registry);
    return vmbox_error_hint(err, "the registry is missing a layer of this image; re-push it");
  case 408:
  case 429:
  case 500:
  case 502:
  case 503:
  case 504:
    vmbox_error_set(&why, 0, "registry %s answered HTTP %ld for blob %s", f->s->registry, status,
                    dg);
    return xfer_retry(x, &why, err);
  default:
    return vmbox_error_set(err, 0, "registry %s answered HTTP %ld for blob %s", f->s->registry,
                           status, dg);
  }
}

static bool transient(CURLcode rc)
{
  return rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR ||
         rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_GOT_NOTHING || rc == CURLE_HTTP2_STREAM ||
         rc == CURLE_HTTP2;
}

static int xfer_done(struct fetch *f, struct xfer *x, CURLcode rc, vmbox_error_t *err)
{
  long status = 0;
  curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
  xfer_release(f, x);
  if (x->werr) {
    *err = steal_pointer(&x->werr);
    f->drop_partials = true;
    return -1;
  }
  if (x->bad_range) {
    vmbox_error_t why = NULL;
    vmbox_error_set(&why, 0, "registry %s answered a resume of blob %s with the wrong range",
                    f->s->registry, x->job->desc->digest);
    return xfer_retry(x, &why, err);
  }
  if (rc != CURLE_OK && transient(rc)) {
    vmbox_error_t why = NULL;
    vmbox_error_set(&why, 0, "blob %s from %s truncated at %" PRIu64 " of %" PRIu64 " bytes (%s)",
                    x->job->desc->digest, f->s->registry, x->w ? blob_writer__offset(x->w) : 0,
                    declared_size(x), x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
    return xfer_retry(x, &why, err);
  }
  if (rc != CURLE_OK)
    return http__curl_error(rc, x->errbuf, f->s->registry, x->job->desc->digest, err);
  if (status == 200 || status == 206)
    return xfer_ok(f, x, err);
  return xfer_http_status(f, x, status, err);
}

/* Starts what may start now; returns the ns until the next backoff ends. */
static int start_ready(struct fetch *f, int max, uint64_t *wait_ns, vmbox_error_t *err)
{
  uint64_t now = util__now_ns();
  *wait_ns = UINT64_MAX;
  for (size_t i = 0; i < f->n && f->active < (size_t)max; i++) {
    struct xfer *x = &f->x[i];
    if (x->state != X_PENDING)
      continue;
    if (x->not_before_ns > now) {
      if (x->not_before_ns - now < *wait_ns)
        *wait_ns = x->not_before_ns - now;
      continue;
    }
    if (!x->w && store__blob_begin(f->st, x->job->desc->digest, &x->w, err) < 0)
      return -1;
    /* A complete partial (kill -9 right before commit) needs no request; if
     * it does not verify, the store drops it and we download afresh. */
    if (blob_writer__offset(x->w) == declared_size(x) && declared_size(x) > 0) {
      vmbox_error_t bad = NULL;
      if (xfer_commit(x, &bad) == 0)
        continue;
      log__debug("%s: stale partial: %s", x->job->desc->digest, bad->msg);
      vmbox_error_free(&bad);
      if (store__blob_begin(f->st, x->job->desc->digest, &x->w, err) < 0)
        return -1;
    }
    if (xfer_start(f, x, err) < 0)
      return -1;
  }
  return 0;
}

static bool all_done(const struct fetch *f)
{
  for (size_t i = 0; i < f->n; i++)
    if (f->x[i].state != X_DONE)
      return false;
  return true;
}

static int drain(struct fetch *f, vmbox_error_t *err)
{
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(f->m, &left))) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    struct xfer *x = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    if (xfer_done(f, x, msg->data.result, err) < 0)
      return -1;
  }
  return 0;
}

static int run(struct fetch *f, vmbox_error_t *err)
{
  int max = f->opts->max_parallel > 0 ? f->opts->max_parallel : REG_DEFAULT_PARALLEL;
  while (!all_done(f)) {
    uint64_t wait_ns;
    if (start_ready(f, max, &wait_ns, err) < 0)
      return -1;
    int running = 0;
    if (curl_multi_perform(f->m, &running) != CURLM_OK)
      return vmbox_error_set(err, 0, "libcurl multi transfer failed");
    if (drain(f, err) < 0)
      return -1;
    report(f, false);
    int ms = 200;
    if (f->active == 0 && wait_ns != UINT64_MAX)
      ms = (int)(wait_ns / 1000000ULL) + 1;
    if (f->active > 0 || wait_ns != UINT64_MAX)
      curl_multi_poll(f->m, NULL, 0, ms, NULL);
  }
  return 0;
}

static void cleanup(struct fetch *f, bool failed)
{
  for (size_t i = 0; i < f->n; i++) {
    struct xfer *x = &f->x[i];
    xfer_release(f, x);
    /* After a failure the untouched partials stay for the next pull to resume;
     * ones the store already deleted (disk full, bad digest) are gone. */
    if (x->w)
      blob_writer__abort(x->w, failed && !f->drop_partials);
    vmbox_error_free(&x->werr);
    http_resp__free(&x->resp);
  }
  curl_multi_cleanup(f->m);
  free(f->x);
  free(f->prog);
}

int blobs__fetch(struct store *st, struct reg_session *s, struct blob_job *jobs, size_t n,
                 const struct pull_opts *opts, vmbox_error_t *err)
{
  struct fetch f = {.st = st, .s = s, .opts = opts, .n = n};
  f.x = xcalloc(n ? n : 1, sizeof(*f.x));
  f.prog = xcalloc(n ? n : 1, sizeof(*f.prog));
  f.m = curl_multi_init();
  for (size_t i = 0; i < n; i++) {
    f.x[i].job = &jobs[i];
    f.x[i].prog = &f.prog[i];
    f.prog[i].digest = jobs[i].desc->digest;
    f.prog[i].total = declared_size(&f.x[i]);
    if (store__has_blob(st, jobs[i].desc->digest)) {
      f.prog[i].state = PULL_EXISTS;
      f.prog[i].done = f.prog[i].total;
      f.x[i].state = X_DONE;
    }
  }
  report(&f, true);
  int rc = f.m ? run(&f, err) : vmbox_error_set(err, 0, "cannot initialise libcurl");
  report(&f, true);
  cleanup(&f, rc < 0);
  return rc;
}
