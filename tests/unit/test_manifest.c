#include <stdlib.h>
#include <string.h>

#include "../../image/manifest.h"
#include "../../lib/util.h"
#include "tap.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"

static int parse(const char *json, struct manifest *m, char **msg)
{
  vmbox_error_t err = NULL;
  int r = manifest__parse(json, strlen(json), NULL, m, &err);
  if (r < 0) {
    *msg = vmbox_error_string(err);
    vmbox_error_free(&err);
  }
  return r;
}

static void test_image_manifest(void)
{
  struct manifest m;
  char *msg = NULL;
  const char *j =
      "{\"schemaVersion\":2,\"mediaType\":\"" MT_DOCKER_MANIFEST "\","
      "\"config\":{\"mediaType\":\"" MT_DOCKER_CONFIG "\",\"digest\":\"" D1 "\",\"size\":10},"
      "\"layers\":[{\"mediaType\":\"" MT_DOCKER_LAYER_GZIP "\",\"digest\":\"" D2
      "\",\"size\":20}]}";
  TAP_OK(parse(j, &m, &msg) == 0, "docker schema2 manifest parses");
  TAP_OK(m.kind == MANIFEST_IMAGE && m.n_layers == 1 && m.layers[0].size == 20 &&
             strcmp(m.config.digest, D1) == 0,
         "config and layers are read");
  manifest__free(&m);
}

static void test_index_select(void)
{
  struct manifest m;
  char *msg = NULL;
  const char *j = "{\"schemaVersion\":2,\"manifests\":["
                  "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1,"
                  "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"}},"
                  "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D2 "\",\"size\":1,"
                  "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}";
  TAP_OK(parse(j, &m, &msg) == 0 && m.kind == MANIFEST_INDEX, "index without mediaType parses");
  const struct descriptor *d = manifest__select(&m, "linux/amd64");
  TAP_OK(d && strcmp(d->digest, D2) == 0, "selects linux/amd64");
  d = manifest__select(&m, "linux/arm64");
  TAP_OK(d && strcmp(d->digest, D1) == 0, "linux/arm64 matches the v8 variant");
  TAP_OK(manifest__select(&m, "linux/s390x") == NULL, "absent platform gives NULL");
  manifest__free(&m);
}

static void test_bad(void)
{
  struct manifest m;
  char *msg = NULL;
  TAP_OK(parse("{not json", &m, &msg) < 0 && strstr(msg, "malformed manifest JSON"),
         "malformed JSON is reported: %s", msg);
  free(msg);
  msg = NULL;
  TAP_OK(parse("{\"schemaVersion\":1,\"fsLayers\":[]}", &m, &msg) < 0 &&
             strstr(msg, "schema version 1"),
         "schema1 is refused: %s", msg);
  free(msg);
  msg = NULL;
  TAP_OK(parse("{\"mediaType\":\"application/x-foo\"}", &m, &msg) < 0 &&
             strstr(msg, "unsupported manifest media type"),
         "unknown media type is refused: %s", msg);
  free(msg);
  msg = NULL;
  TAP_OK(parse("{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"config\":{\"digest\":\"sha256:../x\","
               "\"size\":1},\"layers\":[]}",
               &m, &msg) < 0 &&
             strstr(msg, "malformed config descriptor"),
         "a digest that is not sha256 hex is refused: %s", msg);
  free(msg);
  msg = NULL;
  TAP_OK(parse("{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"config\":{\"digest\":\"" D1
               "\",\"size\":1},\"layers\":[{\"mediaType\":\"application/x-rar\",\"digest\":\"" D2
               "\",\"size\":3}]}",
               &m, &msg) < 0 &&
             strstr(msg, "unsupported layer media type application/x-rar"),
         "unknown layer type is refused: %s", msg);
  free(msg);
}

static void test_config(void)
{
  const char *j =
      "{\"os\":\"linux\",\"architecture\":\"amd64\",\"created\":\"2024-01-02T03:04:05.123Z\","
      "\"config\":{\"Env\":[\"A=1\",\"B=2\"],\"Cmd\":[\"sh\"],\"WorkingDir\":\"/w\","
      "\"User\":\"1000:1000\",\"ExposedPorts\":{\"80/tcp\":{}}},"
      "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D1 "\"]}}";
  struct image_config c;
  vmbox_error_t err = NULL;
  TAP_OK(image_config__parse(j, strlen(j), &c, &err) == 0, "config parses");
  TAP_OK(strv_len(c.env) == 2 && c.entrypoint == NULL && strcmp(c.cmd[0], "sh") == 0 &&
             strcmp(c.working_dir, "/w") == 0 && strcmp(c.user, "1000:1000") == 0 &&
             strcmp(c.exposed_ports[0], "80/tcp") == 0 && strv_len(c.diff_ids) == 1,
         "Env, Cmd, WorkingDir, User, ExposedPorts, diff_ids");
  TAP_OK(c.created == 1704164645, "created is parsed as UTC (%lld)", (long long)c.created);
  image_config__free(&c);
}

int main(void)
{
  test_image_manifest();
  test_index_select();
  test_bad();
  test_config();
  return tap__done();
}
