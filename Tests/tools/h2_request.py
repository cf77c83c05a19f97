"""Sends one HTTP/2 request over TLS to a loopback gateway and prints the response status (or
"reset"/"closed"). The header block is sent as given, without the client library's checks, so a
test can send what a browser never would: a :method with quotes, an absolute :path, an
:authority that disagrees with host, DATA on a GET.

usage: h2_request.py PORT METHOD PATH [--authority A] [--header name:value ...] [--data TEXT]
"""
import argparse
import socket
import ssl

import h2.config
import h2.connection
import h2.events


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("method")
    p.add_argument("path")
    p.add_argument("--authority", default="localhost")
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--data")
    a = p.parse_args()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", a.port), timeout=5), server_hostname="localhost")
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False)
    )
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    headers = [(":method", a.method), (":path", a.path), (":scheme", "https"), (":authority", a.authority)]
    headers += [tuple(h.split(":", 1)) for h in a.header]
    conn.send_headers(1, headers, end_stream=a.data is None)
    if a.data is not None:
        conn.send_data(1, a.data.encode(), end_stream=True)
    sock.sendall(conn.data_to_send())
    status = "closed"
    for _ in range(200):  # bounded: at most 200 reads of up to 5 s each
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        if not data:
            break
        done = False
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                status = dict(event.headers).get(b":status", b"?").decode()
            elif isinstance(event, h2.events.StreamReset):
                status = status if status != "closed" else "reset"
                done = True
            elif isinstance(event, h2.events.StreamEnded):
                done = True
        sock.sendall(conn.data_to_send())
        if done:
            break
    print(status)


if __name__ == "__main__":
    main()
