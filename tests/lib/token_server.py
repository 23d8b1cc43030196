#!/usr/bin/env python3
"""A registry token server (distribution token auth spec) for the tests.

docker-registry runs with `auth: token:` pointing its realm here.  Tokens are
RS256 JWTs signed by `openssl dgst -sha256 -sign` with an x5c header carrying
the self-signed certificate that the registry trusts (rootcertbundle).

Policy, like Docker Hub's:
  * Basic credentials USER:PASSWORD  -> the actions asked for in each scope
  * wrong credentials                -> 401
  * no credentials                   -> "pull" on repositories under public/,
                                        nothing elsewhere (the registry then
                                        answers 401 insufficient_scope)

Every request is logged as one line "GET <path> auth=<none|good|bad>" to --log.
The server listens on 127.0.0.1, on a free port written to --port-file, and
exits after --lifetime seconds whatever happens (tests must never hang).

With --front URL the same program is instead a fault-injecting reverse proxy
in front of a real docker-registry (for failures a healthy registry never
produces).  The faults in effect are read from --fault-file on every request
(comma-separated, empty for none), so a test can change them between pulls:
  manifest-malformed  manifest bodies cut in half (digest header recomputed)
  manifest-mediatype  manifests served as an unknown media type
  manifest-schema1    a Docker schema1 manifest instead
  manifest-huge       a 5 MiB manifest (valid JSON padded with spaces)
  manifest-tampered   a space appended to manifests, digest header left as is
  blob-slow           blob bodies trickle (~600 KB/s) so a pull can be killed
  blob-truncate       blob bodies stop halfway, then the connection closes
  blob-corrupt        one byte of every blob body flipped
  blob-ignore-range   Range headers dropped: full 200 answers to resumes
Each proxied request is logged as "GET <path> range=<Range or -> active=<N>",
N being the blob downloads in flight at that moment.
"""
import argparse
import base64
import hashlib
import http.client
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cert_der_b64(cert_pem):
    out = subprocess.run(["openssl", "x509", "-in", cert_pem, "-outform", "DER"],
                         check=True, capture_output=True, timeout=30).stdout
    return base64.b64encode(out).decode()


class Issuer:
    def __init__(self, args):
        self.args = args
        self.x5c = cert_der_b64(args.cert)
        self.n = 0

    def sign(self, subject, access):
        now = int(time.time())
        self.n += 1
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": self.args.issuer, "sub": subject, "aud": self.args.service,
                  "exp": now + 300, "nbf": now - 10, "iat": now,
                  "jti": "vmbox-test-%d-%d" % (os.getpid(), self.n), "access": access}
        signing_input = (b64url(json.dumps(header).encode()) + "." +
                         b64url(json.dumps(claims).encode()))
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.args.key],
                             input=signing_input.encode(), check=True,
                             capture_output=True, timeout=30).stdout
        return signing_input + "." + b64url(sig)


def parse_scopes(values):
    access = []
    for scope in values:
        parts = scope.split(":")
        if len(parts) < 3:
            continue
        typ, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1]
        access.append({"type": typ, "name": name,
                       "actions": [a for a in actions.split(",") if a]})
    return access


class Handler(http.server.BaseHTTPRequestHandler):
    issuer = None
    args = None

    def log_message(self, fmt, *a):  # quiet; we keep our own log
        pass

    def check_auth(self):
        h = self.headers.get("Authorization", "")
        if not h.lower().startswith("basic "):
            return "none"
        try:
            user, _, pw = base64.b64decode(h[6:]).decode().partition(":")
        except Exception:
            return "bad"
        return "good" if (user, pw) == (self.args.user, self.args.password) else "bad"

    def send_json(self, code, obj, extra=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        who = self.check_auth()
        with open(self.args.log, "a") as f:
            f.write("GET %s auth=%s\n" % (self.path, who))
        if url.path != "/token":
            return self.send_json(404, {"error": "not found"})
        if who == "bad":
            return self.send_json(401, {"details": "incorrect username or password"},
                                  {"WWW-Authenticate": 'Basic realm="vmbox-test-token"'})
        q = urllib.parse.parse_qs(url.query)
        if q.get("service", [""])[0] != self.args.service:
            return self.send_json(400, {"details": "unknown service"})
        access = parse_scopes(q.get("scope", []))
        if who == "none":
            for a in access:
                public = a["type"] == "repository" and a["name"].startswith("public/")
                a["actions"] = ["pull"] if public and "pull" in a["actions"] else []
        token = self.issuer.sign(self.args.user if who == "good" else "", access)
        reply = {"expires_in": 300, "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                               time.gmtime())}
        if self.args.field in ("token", "both"):
            reply["token"] = token
        if self.args.field in ("access_token", "both"):
            reply["access_token"] = token
        self.send_json(200, reply)


class Front(http.server.BaseHTTPRequestHandler):
    args = None
    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    active = 0  # blob GETs in flight, logged so tests can see the parallelism

    def log_message(self, fmt, *a):
        pass

    def faults(self):
        try:
            with open(self.args.fault_file) as f:
                return {x.strip() for x in f.read().split(",") if x.strip()}
        except OSError:
            return set()

    def do_HEAD(self):
        self.relay(head=True)

    def do_GET(self):
        self.relay(head=False)

    def relay(self, head):
        faults = self.faults()
        is_blob = "/blobs/" in self.path
        is_manifest = "/manifests/" in self.path
        counted = is_blob and self.command == "GET"
        with Front.lock:
            if counted:
                Front.active += 1
            with open(self.args.log, "a") as f:
                f.write("%s %s range=%s active=%d\n" % (self.command, self.path,
                                                       self.headers.get("Range", "-"),
                                                       Front.active))
        try:
            self.relay_upstream(head, faults, is_blob, is_manifest)
        finally:
            if counted:
                with Front.lock:
                    Front.active -= 1

    def relay_upstream(self, head, faults, is_blob, is_manifest):
        up = urllib.parse.urlparse(self.args.front)
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
        hdrs = {k: v for k, v in self.headers.items()
                if k.lower() in ("authorization", "accept", "range", "user-agent")}
        if is_blob and "blob-ignore-range" in faults:
            hdrs.pop("Range", None)
            hdrs.pop("range", None)
        conn.request(self.command, self.path, headers=hdrs)
        resp = conn.getresponse()
        out_headers = [(k, v) for k, v in resp.getheaders()
                       if k.lower() not in ("connection", "transfer-encoding", "keep-alive")]
        if head or resp.status not in (200, 206) or not (is_blob or is_manifest):
            body = resp.read()
            return self.answer(resp.status, out_headers, body, head)
        if is_manifest and resp.status == 200:
            return self.manifest(resp, out_headers, faults)
        self.blob(resp, out_headers, faults)

    def answer(self, status, headers, body, head=False):
        self.send_response(status)
        for k, v in headers:
            if k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def manifest(self, resp, headers, faults):
        body = resp.read()
        if "manifest-malformed" in faults:
            body = body[: len(body) // 2]
        if "manifest-mediatype" in faults:
            doc = json.loads(body)
            doc["mediaType"] = "application/vnd.example.unknown.v1+json"
            body = json.dumps(doc).encode()
            headers = [(k, "application/vnd.example.unknown.v1+json"
                        if k.lower() == "content-type" else v) for k, v in headers]
        if "manifest-schema1" in faults:
            body = json.dumps({"schemaVersion": 1, "name": "x", "tag": "latest",
                               "architecture": "amd64", "fsLayers": [],
                               "history": []}).encode()
            headers = [(k, "application/vnd.docker.distribution.manifest.v1+prettyjws"
                        if k.lower() == "content-type" else v) for k, v in headers]
        if "manifest-tampered" in faults:
            body = body + b" "
        if "manifest-huge" in faults:
            body = body + b" " * (5 << 20)
        if faults & {"manifest-malformed", "manifest-mediatype", "manifest-schema1",
                     "manifest-huge"}:
            dg = "sha256:" + hashlib.sha256(body).hexdigest()
            headers = [(k, dg if k.lower() == "docker-content-digest" else v)
                       for k, v in headers]
        self.answer(200, headers, body)

    def blob(self, resp, headers, faults):
        length = int(resp.getheader("Content-Length", "0"))
        self.send_response(resp.status)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        sent, flipped = 0, False
        while sent < length:
            chunk = resp.read(min(32768, length - sent))
            if not chunk:
                break
            if "blob-truncate" in faults and sent + len(chunk) > length // 2:
                chunk = chunk[: max(0, length // 2 - sent)]
                self.wfile.write(chunk)
                self.wfile.flush()
                self.close_connection = True
                return
            if "blob-corrupt" in faults and not flipped and sent + len(chunk) > length // 2:
                i = length // 2 - sent
                chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1:]
                flipped = True
            self.wfile.write(chunk)
            sent += len(chunk)
            if "blob-slow" in faults:
                self.wfile.flush()
                time.sleep(0.05)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--key")
    p.add_argument("--cert")
    p.add_argument("--front", help="upstream registry URL: run as a fault proxy")
    p.add_argument("--fault-file", default="/dev/null")
    p.add_argument("--issuer", default="vmbox-test-issuer")
    p.add_argument("--service", default="vmbox-test-registry")
    p.add_argument("--user", default="testuser")
    p.add_argument("--password", default="testpass")
    p.add_argument("--field", choices=["token", "access_token", "both"], default="token")
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--lifetime", type=int, default=1800)
    args = p.parse_args()
    if args.front:
        Front.args = args
        handler = Front
    else:
        if not (args.key and args.cert):
            p.error("--key and --cert are required for the token server")
        Handler.args = args
        Handler.issuer = Issuer(args)
        handler = Handler
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, args.port_file)
    timer = threading.Timer(args.lifetime, srv.shutdown)
    timer.daemon = True
    timer.start()
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
