"""The JWKS endpoint the wards fetch their RS256 key from: a tiny HTTP
server in a thread of this process, so a fault can switch what it
answers (the document, 500, garbage, or the document 3 s late) and count
the fetches."""

from __future__ import annotations

import http.server
import threading
import time

MODES = ("ok", "500", "garbage", "slow")
SLOW_S = 3.0


class JwksServer:
    def __init__(self, document: bytes):
        self.document = document
        self.mode = "ok"
        self.fetches = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - http.server's name
                server.fetches += 1
                mode = server.mode
                if mode == "slow":
                    time.sleep(SLOW_S)
                if mode == "500":
                    status, body = 500, b"internal error"
                elif mode == "garbage":
                    status, body = 200, b"{\"keys\": [this is not json"
                else:
                    status, body = 200, server.document
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/jwks.json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
