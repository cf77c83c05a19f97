#!/usr/bin/env python3
"""Runs the smuggling and normalisation corpus (corpus.py) through a gateway and judges every case
by what the recording origin (recording_origin.py) parsed.

One-site mode (the gateway forwards every host name to one origin):
  run_corpus.py --gateway 127.0.0.1:8080 [--tls-port 8443] --origin-control 127.0.0.1:9001
Two-site mode (host X to one origin, host Y to another; runs the two-site cases):
  run_corpus.py --gateway 127.0.0.1:8080 [--tls-port 8443] --site x.test=127.0.0.1:9001 --site y.test=127.0.0.1:9002

Options: --json (one JSON document on stdout instead of the table), --only ID[,ID] (a few cases),
--label NAME (shown in the output). Without --tls-port the HTTP/2 cases are skipped (and listed).
Exit status: 0 when every case that ran passed, 1 otherwise, 2 on a usage or set-up error.

Loopback only: every address must be in 127.0.0.0/8. Every socket has a timeout, every loop a bound.
Each case is sent from its own source address (127.1.N.1), so per-source limits and bans that a
gateway keeps for malformed requests do not spill from one case into another.
"""
import argparse
import base64
import json
import os
import socket
import ssl
import sys
import time
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402

X, Y, Z = "x.test", "y.test", "z.test"
CLIENT_TIMEOUT = 3.0
HTTP10_TIMEOUT = 5.0
SETTLE_IDLE = 0.1
SETTLE_MAX = 3.0
HEALTH_AGENTS = ("rampart-health-check",)


def fail_setup(message):
    print(message, file=sys.stderr)
    sys.exit(2)


def loopback(addr):
    host, _, port = addr.rpartition(":")
    if not host.startswith("127.") or not port.isdigit():
        fail_setup("loopback addresses (127.0.0.0/8) with a port only: %s" % addr)
    return host, int(port)


# ---------------------------------------------------------------- origin control

class Origin:
    def __init__(self, site, control):
        self.site = site
        self.control = loopback(control)

    def call(self, method, path):
        req = urllib.request.Request("http://%s:%d%s" % (self.control + (path,)), method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def reset(self):
        self.call("POST", "/reset")

    def records(self):
        return self.call("GET", "/records")


def is_health_check(event):
    if event["type"] != "request":
        return False
    agents = [v for n, v in event["headers"] if n.lower() == "user-agent"]
    return any(a in HEALTH_AGENTS for a in agents)


def settle(origins):
    """Waits (at most SETTLE_MAX s) until every origin has been quiet for SETTLE_IDLE s; returns
    {site: (events, pending)} with health checks left out."""
    deadline = time.monotonic() + SETTLE_MAX
    while True:
        snaps = {o.site: o.records() for o in origins}
        quiet = all(s["idle_seconds"] >= SETTLE_IDLE for s in snaps.values())
        if quiet or time.monotonic() > deadline:
            return {site: ([e for e in s["events"] if not is_health_check(e)], s["pending"]) for site, s in snaps.items()}
        time.sleep(0.05)


# ---------------------------------------------------------------- clients

class Response:
    def __init__(self, status, headers, body, framing):
        self.status = status
        self.headers = headers
        self.body = body
        self.framing = framing

    def header(self, name):
        return next((v for n, v in self.headers if n == name), None)

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Reader:
    """Reads HTTP/1.x responses from a socket, with one deadline for everything."""

    def __init__(self, sock, deadline):
        self.sock = sock
        self.deadline = deadline
        self.buf = b""
        self.closed = False
        self.timed_out = False

    def fill(self):
        remaining = self.deadline - time.monotonic()
        if remaining <= 0 or self.closed:
            self.timed_out = self.timed_out or remaining <= 0
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            self.timed_out = True
            return False
        except OSError:
            self.closed = True
            return False
        if not data:
            self.closed = True
            return False
        self.buf += data
        return True

    def line(self):
        for _ in range(100_000):
            i = self.buf.find(b"\n")
            if i >= 0:
                out, self.buf = self.buf[:i].rstrip(b"\r"), self.buf[i + 1:]
                return out
            if not self.fill():
                return None
        return None

    def take(self, n):
        for _ in range(100_000):
            if len(self.buf) >= n:
                out, self.buf = self.buf[:n], self.buf[n:]
                return out
            if not self.fill():
                return None
        return None

    def response(self, head_only=False):
        status = self.line()
        if status is None or not status.startswith(b"HTTP/1."):
            return None
        try:
            code = int(status.split(b" ")[1])
        except (IndexError, ValueError):
            return None
        headers = []
        for _ in range(1000):
            line = self.line()
            if line is None or line == b"":
                break
            name, _, value = line.partition(b":")
            headers.append((name.decode("latin-1").strip().lower(), value.decode("latin-1").strip()))
        r = Response(code, headers, b"", "none")
        if head_only or code in (204, 304) or 100 <= code < 200:
            return r
        te = r.header("transfer-encoding")
        cl = r.header("content-length")
        if te and "chunked" in te.lower():
            r.framing = "chunked"
            for _ in range(100_000):
                size_line = self.line()
                if size_line is None:
                    r.framing = "chunked-incomplete"
                    return r
                try:
                    size = int(size_line.split(b";")[0], 16)
                except ValueError:
                    r.framing = "chunked-invalid"
                    return r
                if size == 0:
                    for _ in range(100):
                        t = self.line()
                        if t is None or t == b"":
                            break
                    return r
                piece = self.take(size)
                if piece is None:
                    r.framing = "chunked-incomplete"
                    return r
                r.body += piece
                self.line()
        elif cl is not None:
            r.framing = "length"
            piece = self.take(int(cl)) if cl.isdigit() else None
            if piece is None:
                r.framing = "length-incomplete"
                r.body = self.buf
                return r
            r.body = piece
        else:
            for _ in range(100_000):
                if not self.fill():
                    break
            r.body, self.buf = self.buf, b""
            r.framing = "close" if self.closed else "unterminated"
        return r


def connect(host, port, source, timeout):
    return socket.create_connection((host, port), timeout=timeout, source_address=(source, 0))


def refusal(status):
    return 400 <= status < 500 or status == 501


class Exchange:
    """What the client saw: responses, and how the connection or stream ended."""

    def __init__(self):
        self.responses = []
        self.closed = False
        self.reset = False
        self.timed_out = False
        self.note = ""
        # Responses to probes sent on the same connection after the case.
        self.followups = []

    def refused(self, statuses=None):
        """A 4xx (or 501, RFC 9112 6.1's answer to a transfer coding the server does not know),
        one of `statuses` when given; or the connection or stream ended without an answer."""
        if self.responses:
            s = self.responses[0].status
            return refusal(s) and (not statuses or s in statuses)
        return self.closed or self.reset

    def describe(self):
        if self.responses:
            return ",".join(str(r.status) for r in self.responses)
        if self.reset:
            return "reset" + (" (%s)" % self.note if self.note else "")
        if self.closed:
            return "closed"
        return "no answer" + (" (%s)" % self.note if self.note else "")


def h1_exchange(gateway, raw, source, count, timeout, head_only=False, followups=(), between=None):
    """Sends `raw`, reads up to `count` responses; then calls `between()`, and if the connection
    is still open sends each of `followups` (raw requests) on it, one response each (ex.followups)."""
    ex = Exchange()
    try:
        sock = connect(gateway[0], gateway[1], source, timeout)
    except OSError as e:
        ex.note = "connect: %s" % e
        return ex
    try:
        try:
            sock.sendall(raw)
        except OSError:
            ex.closed = True
        reader = Reader(sock, time.monotonic() + timeout)
        for _ in range(count):
            r = reader.response(head_only=head_only)
            if r is None:
                break
            ex.responses.append(r)
            if r.status >= 400:
                break
        ex.closed = reader.closed
        ex.timed_out = reader.timed_out
        if between:
            between()
        if followups and len(ex.responses) == count and not reader.closed and not reader.timed_out:
            for follow in followups:
                reader.deadline = time.monotonic() + CLIENT_TIMEOUT
                try:
                    sock.sendall(follow)
                except OSError:
                    break
                r = reader.response()
                if r is None:
                    break
                ex.followups.append(r)
    finally:
        sock.close()
    return ex


def h2_exchange(gateway_host, tls_port, headers, data, source, timeout, sni, followups=(), between=None):
    """Sends one stream (`headers`, then `data` if any); then calls `between()`, and if the
    connection is still usable sends each of `followups` (header lists) as a further stream,
    answered in ex.followups."""
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions
    ex = Exchange()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    try:
        raw = connect(gateway_host, tls_port, source, timeout)
        sock = ctx.wrap_socket(raw, server_hostname=sni)
    except (OSError, ssl.SSLError) as e:
        ex.note = "connect: %s" % e
        return ex
    if sock.selected_alpn_protocol() != "h2":
        ex.note = "ALPN %s" % sock.selected_alpn_protocol()
        sock.close()
        return ex
    config = h2.config.H2Configuration(client_side=True, header_encoding=None, validate_outbound_headers=False,
                                       normalize_outbound_headers=False, validate_inbound_headers=False,
                                       normalize_inbound_headers=False)
    conn = h2.connection.H2Connection(config=config)
    try:
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        r = h2_stream(sock, conn, headers, data, timeout, ex)
        if r is not None:
            ex.responses.append(r)
        if between:
            between()
        for follow in followups:
            if ex.closed or ex.timed_out or "GOAWAY" in ex.note:
                break
            r = h2_stream(sock, conn, follow, b"", CLIENT_TIMEOUT, Exchange())
            if r is None:
                break
            ex.followups.append(r)
    except (OSError, ssl.SSLError, h2.exceptions.H2Error) as e:
        ex.closed = True
        ex.note = "%s" % e
    finally:
        sock.close()
    return ex


def h2_stream(sock, conn, headers, data, timeout, ex):
    """One request stream on an open connection; its response, or None (ex says why)."""
    import h2.events
    import h2.exceptions
    status, resp_headers, body, ended = None, [], b"", False
    deadline = time.monotonic() + timeout
    sid = conn.get_next_available_stream_id()
    encoded = [(n.encode(), v.encode("latin-1")) for n, v in headers]
    conn.send_headers(sid, encoded, end_stream=not data)
    if data:
        conn.send_data(sid, data, end_stream=True)
    sock.sendall(conn.data_to_send())
    for _ in range(10_000):
        if ended:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            ex.timed_out = True
            break
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            ex.timed_out = True
            break
        except (OSError, ssl.SSLError):
            ex.closed = True
            break
        if not chunk:
            ex.closed = True
            break
        try:
            events = conn.receive_data(chunk)
        except h2.exceptions.ProtocolError as e:
            ex.closed = True
            ex.note = "protocol error: %s" % e
            break
        for ev in events:
            if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                resp_headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in ev.headers]
                status = int(dict(resp_headers).get(":status", "0"))
            elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                body += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                ended = True
            elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                ex.reset = True
                ex.note = "RST_STREAM %s" % ev.error_code
                ended = True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                ex.reset = True
                ex.note = "GOAWAY %s" % ev.error_code
                ended = True
        try:
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
        except (OSError, ssl.SSLError):
            pass
    if status is None:
        return None
    return Response(status, resp_headers, body, "h2")


# ---------------------------------------------------------------- judging

def fill(value, ctx):
    if isinstance(value, bytes):
        for k, v in ctx.items():
            value = value.replace(("{%s}" % k).encode(), v.encode())
        return value
    if isinstance(value, str):
        for k, v in ctx.items():
            value = value.replace("{%s}" % k, v)
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(fill(v, ctx) for v in value)
    if isinstance(value, dict):
        return {k: fill(v, ctx) for k, v in value.items()}
    return value


def header_values(event, name):
    return [v for n, v in event["headers"] if n.lower() == name]


def summarize(site, event, two_site):
    where = "@%s " % site if two_site else ""
    if event["type"] == "request":
        host = header_values(event, "host")
        body = base64.b64decode(event["body"])
        text = "%s%s %s %s Host:%s" % (where, event["method"], event["target"], event["version"],
                                      "|".join(host) if host else "-")
        if body:
            text += " body[%d,%s]=%r" % (len(body), event["framing"], body[:40])
        return text
    raw = base64.b64decode(event.get("bytes", ""))
    return "%s%s %s %r" % (where, event["type"], event.get("detail", ""), raw[:60])


def check_request(event, site, want, client, two_site):
    """Empty list when the origin's request is the expected one, else what differs."""
    problems = []
    if event["method"] != want["method"]:
        problems.append("method %s" % event["method"])
    if event["target"] != want["target"]:
        problems.append("target %s" % event["target"])
    hosts = header_values(event, "host")
    if want["host"] == "*":
        if len(hosts) != 1 or not hosts[0]:
            problems.append("Host %r" % hosts)
    elif hosts != [want["host"]]:
        problems.append("Host %r" % hosts)
    body = base64.b64decode(event["body"])
    if body != want["body"]:
        problems.append("body %r" % body[:60])
    if want.get("version") and event["version"] != want["version"]:
        problems.append("version %s" % event["version"])
    if two_site and want.get("origin") and site != want["origin"]:
        problems.append("reached %s's origin" % site)
    for name in want.get("absent", ()):
        if header_values(event, name):
            problems.append("%s present" % name)
    for name, value in want.get("equal", {}).items():
        if header_values(event, name) != [value]:
            problems.append("%s=%r" % (name, header_values(event, name)))
    for name in want.get("absent_or_client", ()):
        got = header_values(event, name)
        if got and got != [client]:
            problems.append("%s=%r (client is %s)" % (name, got, client))
    for name in want.get("last_is_client", ()):
        hops = [h.strip() for v in header_values(event, name) for h in v.split(",")]
        if not hops or hops[-1] != client:
            problems.append("%s=%r (client is %s)" % (name, header_values(event, name), client))
    for name, words in want.get("never", {}).items():
        for v in header_values(event, name):
            if any(w in v for w in words):
                problems.append("%s=%r" % (name, v))
    return problems


def probe_request(proto, target, host):
    if proto == "h2":
        return [(":method", "GET"), (":scheme", "https"), (":authority", host), (":path", target)]
    return ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, host)).encode()


def probe(args, proto, target, host, source, response=None):
    """A GET for `target` at `host`: None when it is answered with the page the origin made for
    `host`, else what went wrong. `response` is its answer on the case's own connection (same
    event loop, so the same per-loop cache); without one it is sent on a new connection."""
    if response is None:
        if proto == "h2":
            ex = h2_exchange(args.gateway[0], args.tls_port, probe_request(proto, target, host), b"", source, CLIENT_TIMEOUT, host)
        else:
            ex = h1_exchange(args.gateway, probe_request(proto, target, host), source, 1, CLIENT_TIMEOUT)
        if not ex.responses:
            return "probe %s Host %s: %s" % (target, host, ex.describe())
        response = ex.responses[0]
    r = response
    doc = r.json() or {}
    if r.status != 200 or doc.get("host") != host or (args.two_site and doc.get("origin") != host):
        return "probe GET %s Host %s got %s with the page %s made for Host %s" % (
            target, host, r.status, "%s's origin" % doc.get("origin") if args.two_site else "the origin", doc.get("host"))
    return None


def run_case(case, args, origins, index, nonce):
    two_site = args.two_site
    ctx = {"p": "c-%s-%s" % (case["id"], nonce), "x": X, "y": Y, "z": Z}
    source = "127.1.%d.%d" % (index // 200 + 1, index % 200 + 1)
    result = {"id": case["id"], "group": case["group"], "proto": case["proto"], "expect": case["expect"],
              "what": case["what"], "client": "", "origin": [], "outcome": "", "pass": False, "problems": []}
    for o in origins:
        o.reset()
    time.sleep(0.05)  # let the gateway see the origin connections the reset closed
    host = args.gateway[0]
    want_requests = fill(case.get("requests", []), ctx)
    probes = fill(case.get("probes", []), ctx)
    followups = [probe_request(case["proto"], target, host_name) for target, host_name in probes]
    # What the origin received for the case itself: read once the case's answers are in, before
    # any probe is sent.
    snapshot = {}

    def between():
        if "got" not in snapshot:
            snapshot["got"] = settle(origins)
    if case["proto"] == "h1":
        raw = fill(case["raw"], ctx)
        timeout = HTTP10_TIMEOUT if case.get("client") == "http10_complete" else CLIENT_TIMEOUT
        head_only = raw.startswith(b"HEAD ")
        ex = h1_exchange(args.gateway, raw, source, case.get("responses", 1), timeout, head_only, followups, between)
    else:
        headers = fill(case["headers"], ctx)
        ex = h2_exchange(host, args.tls_port, headers, fill(case["data"], ctx), source, CLIENT_TIMEOUT, X, followups, between)
    result["client"] = ex.describe()
    between()
    got = snapshot["got"]
    events = [(site, e) for site, (evs, _) in got.items() for e in evs]
    events.sort(key=lambda se: (se[1].get("serial", 0), se[1]["index"]))
    pending = [(site, p) for site, (_, ps) in got.items() for p in ps]
    result["origin"] = [summarize(site, e, two_site) for site, e in events] + \
                       ["%spending %r" % ("@%s " % site if two_site else "", base64.b64decode(p["bytes"])[:60]) for site, p in pending]
    origin_nothing = not events and not pending
    requests = [(site, e) for site, e in events if e["type"] == "request"]
    junk = [(site, e) for site, e in events if e["type"] != "request"] or pending
    problems = result["problems"]

    refused = ex.refused(case.get("status"))
    if refused and origin_nothing:
        outcome = "refused"
    elif refused:
        outcome = "refused, but the origin got: " + "; ".join(result["origin"])
    elif origin_nothing:
        outcome = "client got %s, origin got nothing" % ex.describe()
    else:
        outcome = None

    expect = case["expect"]
    if expect == "refused":
        if outcome != "refused":
            if ex.responses and refusal(ex.responses[0].status) and origin_nothing:
                problems.append("refused with %d, expected %s" % (ex.responses[0].status, case.get("status")))
                outcome = "refused (%d)" % ex.responses[0].status
            else:
                problems.append("expected refused")
                if outcome is None:
                    outcome = "forwarded: " + "; ".join(result["origin"]) + " (client got %s)" % ex.describe()
        else:
            outcome = "refused (%s)" % ex.describe()
    elif expect in ("forwarded", "refused_or_consistent"):
        if expect == "refused_or_consistent" and outcome == "refused":
            outcome = "refused (%s)" % ex.describe()
        else:
            if expect == "refused_or_consistent":
                # One request, with the Host of the site whose origin got it.
                if len(requests) != 1 or junk:
                    problems.append("origin parsed %d requests%s" % (len(requests), " and junk" if junk else ""))
                else:
                    site, e = requests[0]
                    hosts = header_values(e, "host")
                    allowed = [site] if two_site else [X, Y]
                    if len(hosts) != 1 or hosts[0] not in allowed:
                        problems.append("Host %r at %s's origin" % (hosts, site))
                    if e["target"] not in (ctx_target(case, ctx), "http://%s%s" % (hosts[0] if hosts else "", ctx_target(case, ctx))):
                        problems.append("target %s" % e["target"])
            else:
                if len(requests) != len(want_requests):
                    problems.append("origin parsed %d requests, expected %d" % (len(requests), len(want_requests)))
                if two_site:
                    # Serial numbers are per origin: compare each origin's requests, in order, with
                    # the ones expected there.
                    order = [site for site, _ in requests]
                    pairs = []
                    for site in dict.fromkeys([w.get("origin") for w in want_requests] + order):
                        got_here = [r for r in requests if r[0] == site]
                        want_here = [w for w in want_requests if w.get("origin") == site]
                        if len(got_here) != len(want_here):
                            problems.append("%s's origin parsed %d requests, expected %d" % (site, len(got_here), len(want_here)))
                        pairs += list(zip(got_here, want_here))
                else:
                    pairs = list(zip(requests, want_requests))
                for (site, e), want in pairs:
                    p = check_request(e, site, want, source, two_site)
                    if p:
                        problems.append("request %s %s: %s" % (e["method"], e["target"], ", ".join(p)))
                if junk:
                    problems.append("origin saw bytes it could not parse")
            if not problems:
                if case.get("client") == "http10_complete":
                    problems += check_http10(ex)
                elif len(ex.responses) < len(want_requests) or any(r.status != 200 for r in ex.responses) or not ex.responses:
                    problems.append("client got %s" % ex.describe())
            if not problems:
                outcome = "forwarded as expected" if expect == "forwarded" else "forwarded, Host consistent"
            elif outcome == "refused":
                outcome = "refused (%s)" % ex.describe()
            elif outcome is None or outcome.startswith("refused,"):
                outcome = "forwarded differently: " + ("; ".join(result["origin"]) or "nothing")
    # Probes go out after the case's origin record was read (between()), so their own origin
    # requests are never judged as the case's.
    for i, (target, host_name) in enumerate(probes):
        p = probe(args, case["proto"], target, host_name, source, ex.followups[i] if i < len(ex.followups) else None)
        if p:
            problems.append(p)
            if outcome in ("forwarded as expected", "forwarded, Host consistent") or outcome.startswith("refused ("):
                outcome += ", then " + p
    result["outcome"] = outcome
    result["pass"] = not problems
    return result


def ctx_target(case, ctx):
    return fill("/{p}/p", ctx)


def check_http10(ex):
    if not ex.responses:
        return ["HTTP/1.0 client got %s%s" % (ex.describe(), " (hung)" if ex.timed_out else "")]
    r = ex.responses[0]
    problems = []
    if r.status != 200:
        problems.append("status %d" % r.status)
    if r.framing not in ("length", "close"):
        problems.append("HTTP/1.0 client got a body framed as %s%s" % (r.framing, " (hung until the 5 s timeout)" if ex.timed_out else ""))
    doc = r.json()
    if not doc or not doc.get("end"):
        problems.append("body incomplete or not the origin's (%d bytes)" % len(r.body))
    return problems


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--tls-port", type=int)
    ap.add_argument("--origin-control")
    ap.add_argument("--site", action="append", default=[], help="HOST=CONTROL (two-site mode, twice)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only")
    ap.add_argument("--label", default="gateway")
    args = ap.parse_args()
    args.gateway = loopback(args.gateway)
    if args.site:
        args.two_site = True
        origins = [Origin(s.split("=", 1)[0], s.split("=", 1)[1]) for s in args.site]
        if sorted(o.site for o in origins) != [X, Y]:
            fail_setup("two-site mode needs --site %s=... and --site %s=..." % (X, Y))
    elif args.origin_control:
        args.two_site = False
        origins = [Origin("origin", args.origin_control)]
    else:
        ap.print_usage()
        sys.exit(2)
    for o in origins:
        try:
            o.records()
        except OSError as e:
            fail_setup("recording origin control %s:%d does not answer: %s" % (o.control + (e,)))
    mode = "two" if args.two_site else "one"
    cases = [c for c in corpus.CASES if c.get("sites", "one") in (mode, "both")]
    if args.only:
        wanted = set(args.only.split(","))
        cases = [c for c in cases if c["id"] in wanted]
    nonce = "%x" % (int(time.time() * 1000) % 0xFFFFFF)
    results, skipped = [], []
    for i, case in enumerate(cases):
        if case["proto"] == "h2" and not args.tls_port:
            skipped.append(case["id"])
            continue
        try:
            results.append(run_case(case, args, origins, i, nonce))
        except Exception as e:  # a broken case must show, not stop the rest
            results.append({"id": case["id"], "group": case["group"], "proto": case["proto"], "expect": case["expect"],
                            "what": case["what"], "client": "", "origin": [], "outcome": "runner error: %r" % e,
                            "pass": False, "problems": ["runner error: %r" % e]})
    passed = sum(1 for r in results if r["pass"])
    failed = len(results) - passed
    if args.json:
        json.dump({"label": args.label, "mode": mode, "cases": results, "skipped": skipped,
                   "passed": passed, "failed": failed}, sys.stdout, indent=1)
        print()
    else:
        width = max(len(r["id"]) for r in results) if results else 10
        print("%-*s  %-5s %-21s %-4s  %s" % (width, "case", "proto", "expect", "ok", "outcome"))
        for r in results:
            print("%-*s  %-5s %-21s %-4s  %s" % (width, r["id"], r["proto"], r["expect"], "ok" if r["pass"] else "FAIL", r["outcome"]))
            if not r["pass"]:
                for p in r["problems"]:
                    print("%*s  - %s" % (width, "", p))
        if skipped:
            print("skipped (no --tls-port): " + ", ".join(skipped))
        print("%s: %d passed, %d failed" % (args.label, passed, failed))
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
