#!/usr/bin/env python3
"""A strict HTTP/1.1 origin that records exactly what it parsed, for the smuggling corpus.

usage: recording_origin.py [--name NAME]

Listens on two loopback ports and prints them:
  PORT n       the origin (what gateways forward to)
  CONTROL n    the control endpoint: GET /records (JSON), POST /reset (clears the record and
               closes every origin connection, so no byte of one case is left for the next)

The origin parses per RFC 9112, strictly: request line `token SP target SP HTTP/1.x`, fields
`token ":" OWS value OWS` with CRLF only, no obs-fold, Content-Length (digits, one value) or
chunked (the final and only coding) but never both, keep-alive and pipelining. Whatever it cannot
parse is recorded as an error with the bytes it held, answered with 400, and the connection closed.

Each parsed request is recorded in order with its connection number: method, target, version, raw
header list, body (base64), framing (none/length/chunked). The answer is 200 with a small JSON body
naming the origin, a serial number and the Host it saw (so a response made for the wrong Host is
visible to whoever gets it from a cache), `Cache-Control: public, max-age=60` on GET and HEAD.
A target whose path ends in `/chunked` is answered with a chunked body (close-delimited for an
HTTP/1.0 request). Loopback only; every socket has a timeout; the process exits after 15 minutes.
"""
import base64
import json
import os
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import ThreadingMixIn, TCPServer, BaseRequestHandler

TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Request target: visible ASCII only (no SP, no CTL, nothing above 0x7E).
TARGET = re.compile(rb"^[\x21-\x7e]+$")
# Field value: VCHAR, SP, HTAB and obs-text; no CR, LF or NUL.
VALUE = re.compile(rb"^[\t\x20-\x7e\x80-\xff]*$")
MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
IDLE_TIMEOUT = 5.0
LIFETIME = 900


class ParseError(Exception):
    pass


class Incomplete(Exception):
    pass


class Recorder:
    """Every event the origin saw, in order, and the open connections (to close on reset)."""

    def __init__(self, name):
        self.name = name
        self.lock = threading.Lock()
        self.events = []
        self.serial = 0
        self.connection_count = 0
        self.open = {}
        # Connections closed by a reset: whatever they still report belongs to no case.
        self.discarded = set()
        self.last_activity = time.monotonic()

    def new_connection(self, sock):
        with self.lock:
            self.connection_count += 1
            number = self.connection_count
            self.open[number] = {"socket": sock, "pending": b""}
            self.last_activity = time.monotonic()
            return number

    def pending(self, number, data):
        with self.lock:
            if number in self.open:
                self.open[number]["pending"] = data
            self.last_activity = time.monotonic()

    def closed(self, number):
        with self.lock:
            self.open.pop(number, None)
            self.last_activity = time.monotonic()

    def record(self, event):
        with self.lock:
            if event.get("conn") in self.discarded:
                return 0
            if event["type"] == "request":
                self.serial += 1
                event["serial"] = self.serial
            event["index"] = len(self.events)
            self.events.append(event)
            self.last_activity = time.monotonic()
            return event.get("serial", 0)

    def snapshot(self):
        with self.lock:
            return {
                "origin": self.name,
                "events": list(self.events),
                "pending": [
                    {"conn": n, "bytes": base64.b64encode(c["pending"]).decode()}
                    for n, c in self.open.items() if c["pending"]
                ],
                "idle_seconds": time.monotonic() - self.last_activity,
            }

    def reset(self):
        with self.lock:
            self.events = []
            sockets = [c["socket"] for c in self.open.values()]
            self.discarded.update(self.open.keys())
            for c in self.open.values():
                c["pending"] = b""
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def parse_head(buf):
    """Parses one request head from the start of `buf`; returns (request dict, head length).

    Raises Incomplete when more bytes are needed, ParseError when the bytes break RFC 9112."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > MAX_HEAD:
            raise ParseError("head too large")
        # A bare LF where a CRLF must be is an error as soon as it is seen.
        lf = buf.find(b"\n")
        if lf >= 0 and (lf == 0 or buf[lf - 1:lf] != b"\r"):
            raise ParseError("bare LF")
        raise Incomplete()
    head = buf[:end]
    lines = head.split(b"\r\n")
    for line in lines:
        if b"\n" in line or b"\r" in line:
            raise ParseError("bare CR or LF in head")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise ParseError("request line is not method SP target SP version")
    method, target, version = parts
    if not TOKEN.match(method):
        raise ParseError("method is not a token")
    if not TARGET.match(target):
        raise ParseError("invalid request target")
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise ParseError("unsupported version")
    headers = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            raise ParseError("obs-fold")
        colon = line.find(b":")
        if colon <= 0:
            raise ParseError("field without a name")
        name, value = line[:colon], line[colon + 1:].strip(b" \t")
        if not TOKEN.match(name):
            raise ParseError("field name is not a token")
        if not VALUE.match(value):
            raise ParseError("invalid byte in field value")
        headers.append((name.decode("latin-1"), value.decode("latin-1")))
    return {"method": method.decode(), "target": target.decode(), "version": version.decode(), "headers": headers}, end + 4


def values(headers, name):
    return [v for n, v in headers if n.lower() == name]


def framing(request):
    """("none"|"length"|"chunked", length or None), per RFC 9112 6.3."""
    te = values(request["headers"], "transfer-encoding")
    cl = values(request["headers"], "content-length")
    if te:
        if cl:
            raise ParseError("Content-Length and Transfer-Encoding")
        if request["version"] == "HTTP/1.0":
            raise ParseError("Transfer-Encoding in HTTP/1.0")
        codings = [c.strip().lower() for v in te for c in v.split(",")]
        if codings != ["chunked"]:
            raise ParseError("transfer coding other than one chunked")
        return "chunked", None
    if cl:
        if len(cl) != 1 or not re.fullmatch(r"[0-9]{1,15}", cl[0]):
            raise ParseError("invalid Content-Length")
        n = int(cl[0])
        if n > MAX_BODY:
            raise ParseError("body too large")
        return ("length", n) if n > 0 else ("length", 0)
    return "none", 0


def parse_chunked(buf, start):
    """Parses a chunked body starting at `start`; returns (body, end offset)."""
    pos = start
    body = b""
    for _ in range(100_000):
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            if len(buf) - pos > 4096:
                raise ParseError("chunk-size line too long")
            raise Incomplete()
        line = buf[pos:eol]
        size_text, _, ext = line.partition(b";")
        if not re.fullmatch(rb"[0-9A-Fa-f]{1,8}", size_text):
            raise ParseError("invalid chunk size")
        if ext and not re.fullmatch(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+(=([!#$%&'*+\-.^_`|~0-9A-Za-z]+|\"[^\"\r\n]*\"))?(;[!#$%&'*+\-.^_`|~0-9A-Za-z]+(=([!#$%&'*+\-.^_`|~0-9A-Za-z]+|\"[^\"\r\n]*\"))?)*", ext):
            raise ParseError("invalid chunk extension")
        size = int(size_text, 16)
        pos = eol + 2
        if size == 0:
            # Trailer section, then the final CRLF.
            for _ in range(100):
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    raise Incomplete()
                if eol == pos:
                    return body, pos + 2
                if b":" not in buf[pos:eol] or buf[pos:pos + 1] in (b" ", b"\t"):
                    raise ParseError("invalid trailer field")
                pos = eol + 2
            raise ParseError("too many trailer fields")
        if len(body) + size > MAX_BODY:
            raise ParseError("body too large")
        if len(buf) < pos + size + 2:
            raise Incomplete()
        body += buf[pos:pos + size]
        if buf[pos + size:pos + size + 2] != b"\r\n":
            raise ParseError("chunk data not followed by CRLF")
        pos += size + 2
    raise ParseError("too many chunks")


def parse_request(buf):
    """One whole request (head and body) from the start of `buf`: (request, bytes used)."""
    request, pos = parse_head(buf)
    kind, length = framing(request)
    if kind == "chunked":
        body, pos = parse_chunked(buf, pos)
    else:
        if len(buf) < pos + length:
            raise Incomplete()
        body = buf[pos:pos + length]
        pos += length
    request["framing"] = kind
    request["body"] = body
    return request, pos


def response(recorder, request, serial):
    host = values(request["headers"], "host")
    path = request["target"].split("?", 1)[0]
    doc = {"origin": recorder.name, "serial": serial, "host": host[0] if host else None,
           "method": request["method"], "target": request["target"]}
    head = ["HTTP/1.1 200 OK", "Content-Type: application/json"]
    if request["method"] in ("GET", "HEAD"):
        head.append("Cache-Control: public, max-age=60")
    keep = keep_alive(request)
    if not keep:
        head.append("Connection: close")
    if path.endswith("/chunked"):
        doc["chunked"] = True
        doc["padding"] = "x" * 2000
        doc["end"] = True
        text = json.dumps(doc).encode()
        if request["version"] == "HTTP/1.0":
            # No chunked coding for an HTTP/1.0 recipient: delimited by closing.
            if keep:
                head.append("Connection: close")
            return ("\r\n".join(head) + "\r\n\r\n").encode() + (b"" if request["method"] == "HEAD" else text), False
        head.append("Transfer-Encoding: chunked")
        out = ("\r\n".join(head) + "\r\n\r\n").encode()
        if request["method"] != "HEAD":
            for i in range(0, len(text), 500):
                piece = text[i:i + 500]
                out += b"%x\r\n" % len(piece) + piece + b"\r\n"
            out += b"0\r\n\r\n"
        return out, keep
    text = json.dumps(doc).encode()
    head.append("Content-Length: %d" % len(text))
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (b"" if request["method"] == "HEAD" else text), keep


def keep_alive(request):
    tokens = [t.strip().lower() for v in values(request["headers"], "connection") for t in v.split(",")]
    if request["version"] == "HTTP/1.1":
        return "close" not in tokens
    return "keep-alive" in tokens


class Origin(BaseRequestHandler):
    def handle(self):
        recorder = self.server.recorder
        sock = self.request
        sock.settimeout(IDLE_TIMEOUT)
        number = recorder.new_connection(sock)
        buf = b""
        try:
            for _ in range(10_000):
                try:
                    request, used = parse_request(buf)
                except Incomplete:
                    try:
                        data = sock.recv(65536)
                    except (socket.timeout, OSError):
                        data = b""
                    if not data:
                        if buf:
                            recorder.record({"type": "incomplete", "conn": number, "bytes": base64.b64encode(buf).decode()})
                        return
                    buf += data
                    recorder.pending(number, buf)
                    continue
                except ParseError as e:
                    recorder.record({"type": "error", "conn": number, "detail": str(e), "bytes": base64.b64encode(buf).decode()})
                    try:
                        sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    except OSError:
                        pass
                    return
                buf = buf[used:]
                recorder.pending(number, buf)
                event = {"type": "request", "conn": number, "method": request["method"], "target": request["target"],
                         "version": request["version"], "headers": request["headers"], "framing": request["framing"],
                         "body": base64.b64encode(request["body"]).decode()}
                serial = recorder.record(event)
                out, keep = response(recorder, request, serial)
                try:
                    sock.sendall(out)
                except OSError:
                    return
                if not keep:
                    if buf:
                        recorder.record({"type": "incomplete", "conn": number, "bytes": base64.b64encode(buf).decode(),
                                         "detail": "bytes after a request that closed the connection"})
                    return
        finally:
            recorder.closed(number)
            try:
                sock.close()
            except OSError:
                pass


class OriginServer(ThreadingMixIn, TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class Control(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, doc):
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/records":
            self.reply(self.server.recorder.snapshot())
        else:
            self.send_error(404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path == "/reset":
            self.server.recorder.reset()
            self.reply({"reset": True})
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


def main():
    name = "origin"
    if len(sys.argv) > 2 and sys.argv[1] == "--name":
        name = sys.argv[2]
    # Bounded: gone after LIFETIME seconds even if whoever started it could not stop it.
    threading.Timer(LIFETIME, lambda: os._exit(0)).start()
    recorder = Recorder(name)
    origin = OriginServer(("127.0.0.1", 0), Origin)
    origin.recorder = recorder
    control = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    control.daemon_threads = True
    control.recorder = recorder
    threading.Thread(target=control.serve_forever, daemon=True).start()
    print("PORT", origin.server_address[1], flush=True)
    print("CONTROL", control.server_address[1], flush=True)
    origin.serve_forever()


if __name__ == "__main__":
    main()
