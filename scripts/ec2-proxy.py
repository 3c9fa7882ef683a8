#!/usr/bin/env python3
"""A loopback HTTP proxy in front of the local EC2 endpoint, for tests and
benchmarks: it counts the API calls by `Action=` and can answer some of them
with EC2's throttling error instead of forwarding them.

    ec2-proxy.py UPSTREAM_URL [--throttle ACTION:N ...] [--account ID]

prints the port it listens on (127.0.0.1 only), then serves until killed.
`--throttle StopInstances:2` answers the first two StopInstances calls with
HTTP 503 RequestLimitExceeded; they are not forwarded. Calls with DryRun=true
are counted apart and never throttled. `--account 111111111111` sends every
call to that account of the endpoint (moto's `x-moto-account-id` header), as
credentials for another account would.

    GET  /_proxy/counts   {"forwarded": {action: n}, "throttled": {...}, "dry_run": {...}}
    POST /_proxy/reset    zero the counts

Standard library only.
"""

import http.server
import json
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request

THROTTLED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
    "<Message>Request limit exceeded.</Message></Error></Errors>"
    "<RequestID>pare-proxy</RequestID></Response>"
).encode()


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        sys.exit(__doc__)
    upstream = args[0].rstrip("/")
    if not upstream.startswith("http://127.0.0.1:"):
        sys.exit("the upstream must be a loopback URL like http://127.0.0.1:PORT")
    throttle = {}
    account = None
    rest = args[1:]
    while rest:
        flag = rest.pop(0)
        if flag == "--account" and rest and rest[0].isdigit() and len(rest[0]) == 12:
            account = rest.pop(0)
            continue
        if flag != "--throttle" or not rest or ":" not in rest[0]:
            sys.exit(__doc__)
        action, n = rest.pop(0).split(":", 1)
        throttle[action] = int(n)

    lock = threading.Lock()
    counts = {"forwarded": {}, "throttled": {}, "dry_run": {}}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def reply(self, status, headers, body):
            self.send_response(status)
            for k, v in headers:
                if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/_proxy/counts":
                with lock:
                    body = json.dumps(counts).encode()
                self.reply(200, [("Content-Type", "application/json")], body)
            else:
                self.forward(b"")

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self.path == "/_proxy/reset":
                with lock:
                    for c in counts.values():
                        c.clear()
                self.reply(200, [], b"{}")
                return
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
            action = (form.get("Action") or [self.headers.get("X-Amz-Target") or "other"])[0]
            dry = (form.get("DryRun") or ["false"])[0].lower() == "true"
            with lock:
                if dry:
                    counts["dry_run"][action] = counts["dry_run"].get(action, 0) + 1
                    refuse = False
                elif throttle.get(action, 0) > 0:
                    throttle[action] -= 1
                    counts["throttled"][action] = counts["throttled"].get(action, 0) + 1
                    refuse = True
                else:
                    counts["forwarded"][action] = counts["forwarded"].get(action, 0) + 1
                    refuse = False
            if refuse:
                self.reply(503, [("Content-Type", "text/xml")], THROTTLED)
                return
            self.forward(body)

        def forward(self, body):
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
            if account:
                headers["x-moto-account-id"] = account
            req = urllib.request.Request(
                upstream + self.path, data=body if self.command == "POST" else None, headers=headers, method=self.command
            )
            try:
                with opener.open(req, timeout=300) as r:
                    self.reply(r.status, r.getheaders(), r.read())
            except urllib.error.HTTPError as e:
                self.reply(e.code, e.headers.items(), e.read())

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
