"""A tiny RFC 7662 introspection endpoint for the benchmark bed: every
token is active (`sub` bench-user, a day left). The introspection rows
measure ward, not a provider: the hit row calls it once per run, the cold
row once per token (then it is the bottleneck, said in the report).

    python3 introspection_responder.py PORT
"""

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 - the stdlib's name
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        body = json.dumps({"active": True, "sub": "bench-user", "client_id": "bench",
                           "scope": "bench", "exp": int(time.time()) + 86400}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
