#!/usr/bin/env python3
"""A webhook receiver for tests: listens on 127.0.0.1 (port 0), prints "PORT n" first, then one
line per POST body received. The first POST gets 500 (so the sender's retry is exercised), later
ones 200. Exits after `limit` seconds."""
import http.server
import sys
import threading

limit = float(sys.argv[1]) if len(sys.argv) > 1 else 60
calls = {"n": 0}
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        # Deliveries arrive on several threads at once: one whole line each, never interleaved.
        with lock:
            calls["n"] += 1
            status = 500 if calls["n"] == 1 else 200
            sys.stdout.write(f"{status} {body.decode()}\n")
            sys.stdout.flush()
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"PORT {server.server_address[1]}", flush=True)
threading.Timer(limit, server.shutdown).start()
server.serve_forever()
