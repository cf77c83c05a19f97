"""The smuggling and normalisation corpus: what a client sends, and what the ORIGIN must parse.

Every case names a group, a protocol (h1: raw HTTP/1.1 bytes on plain TCP; h2: one HTTP/2 stream
over TLS with ALPN h2) and an expectation about what the recording origin received:

- refused: the client gets a 4xx (one of `status` when given), or its connection or stream is
  closed or reset, and the origin received nothing at all from the case (no request, no error, no
  stray byte);
- forwarded: the origin parsed exactly the requests in `requests`, in order, and nothing else
  (no second request, no parse error, no bytes left over); each names its method, target, Host
  (`*` = any non-empty Host) and body, and optionally headers that must be absent, equal a value,
  or never contain a text;
- refused_or_consistent: refused, or forwarded with a Host equal to the host name of the site
  whose origin received it, and every probe answered for its own Host (HTTP/2 absolute `:path`).

`probes` are plain HTTP/1.1 GETs sent after the case (their own origin requests are not judged):
each must be answered with a JSON body whose `host` is the probe's Host, which shows a cache
poisoned with another Host's page.

Placeholders, filled in by the runner: {p} a path prefix unique to the case and the run (so no
cache entry of one case answers another), {x} and {y} the two host names (one site answering both
in one-site mode; two sites with an origin each in two-site mode), {z} a host name no site claims.
Cases run in one-site mode unless marked `sites: "two"` (only in two-site mode) or `sites: "both"`.

The expectations are the gateway's target behaviour (issue 12), not what any build does today.
"""

SMUGGLED = b"GET /SMUGGLED HTTP/1.1\r\nHost: evil.test\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"
HEADERS_EVIL = ("6.6.6.6", "evil.test", "/admin", "SMUGGLED")


def chunked(body, size=16):
    out = b""
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return out + b"0\r\n\r\n"


def get(target, host="{x}", **extra):
    return dict(method="GET", target=target, host=host, body=b"", **extra)


CASES = []


def h1(id, group, raw, expect, what, **kw):
    CASES.append(dict(id=id, group=group, proto="h1", raw=raw, expect=expect, what=what, **kw))


def h2(id, group, headers, expect, what, data=b"", **kw):
    CASES.append(dict(id=id, group=group, proto="h2", headers=headers, data=data, expect=expect, what=what, **kw))


def h2_get(path, authority="{x}", method="GET", extra=()):
    return [(":method", method), (":scheme", "https"), (":authority", authority), (":path", path)] + list(extra)


# ---- Baselines: the corpus can tell a forwarding gateway from a refusing one. ----
h1("baseline-get", "baseline", b"GET /{p}/a?q=1 HTTP/1.1\r\nHost: {x}\r\n\r\n",
   "forwarded", "plain GET", requests=[get("/{p}/a?q=1")])
h1("baseline-post", "baseline", b"POST /{p}/form HTTP/1.1\r\nHost: {x}\r\nContent-Length: 7\r\n\r\nabc=def",
   "forwarded", "POST with Content-Length", requests=[dict(method="POST", target="/{p}/form", host="{x}", body=b"abc=def")])
h1("baseline-chunked-post", "baseline",
   b"POST /{p}/form HTTP/1.1\r\nHost: {x}\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"hello chunked world"),
   "forwarded", "chunked POST", requests=[dict(method="POST", target="/{p}/form", host="{x}", body=b"hello chunked world")])

h1("baseline-get-body", "baseline", b"GET /{p}/a HTTP/1.1\r\nHost: {x}\r\nContent-Length: 5\r\n\r\nhello",
   "forwarded", "GET with a Content-Length body", requests=[dict(method="GET", target="/{p}/a", host="{x}", body=b"hello")])
h1("chunk-ext-valid", "baseline",
   b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n0\r\n\r\n",
   "forwarded", "a valid chunk extension", requests=[dict(method="POST", target="/{p}/a", host="{x}", body=b"hello")])
h1("chunk-trailer", "baseline",
   b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n",
   "forwarded", "a chunked body with a trailer field", requests=[dict(method="POST", target="/{p}/a", host="{x}", body=b"hello")])
h1("te-mixed-case", "baseline",
   b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nTransfer-Encoding: Chunked\r\n\r\n" + chunked(b"hello"),
   "forwarded", "Transfer-Encoding: Chunked (codings are case-insensitive)",
   requests=[dict(method="POST", target="/{p}/a", host="{x}", body=b"hello")])
h1("h2c-upgrade", "framing",
   b"GET /{p}/a HTTP/1.1\r\nHost: {x}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
   "forwarded", "h2c upgrade request: the origin is never asked to switch to h2c (a tunnel past every rule)",
   requests=[get("/{p}/a", absent=["http2-settings"], never={"upgrade": ("h2c",)})])

# ---- Framing headers named in Connection (issue 12, item 1). ----
for m in ("GET", "HEAD", "DELETE", "OPTIONS"):
    h1("conn-cl-%s" % m.lower(), "framing",
       m.encode() + b" /{p}/a HTTP/1.1\r\nHost: {x}\r\nContent-Length: %d\r\nConnection: content-length\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
       "forwarded", "%s, Content-Length body holding a whole request, Connection: content-length" % m,
       requests=[dict(method=m, target="/{p}/a", host="{x}", body=SMUGGLED)])
h1("conn-te-post", "framing",
   b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nTransfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n\r\n" + chunked(SMUGGLED),
   "forwarded", "chunked POST holding a whole request, Connection: transfer-encoding",
   requests=[dict(method="POST", target="/{p}/a", host="{x}", body=SMUGGLED)])
h1("conn-te-get", "framing",
   b"GET /{p}/a HTTP/1.1\r\nHost: {x}\r\nTransfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n\r\n" + chunked(SMUGGLED),
   "forwarded", "chunked GET holding a whole request, Connection: transfer-encoding",
   requests=[dict(method="GET", target="/{p}/a", host="{x}", body=SMUGGLED)])
h1("trace-body", "framing",
   b"TRACE /{p}/a HTTP/1.1\r\nHost: {x}\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
   "refused", "TRACE with a body", status=[405])
h1("trace", "framing", b"TRACE /{p}/a HTTP/1.1\r\nHost: {x}\r\n\r\n", "refused", "TRACE", status=[405])
h1("conn-host", "host", b"GET /{p}/a HTTP/1.1\r\nHost: {x}\r\nConnection: host\r\n\r\n",
   "forwarded", "Connection: host keeps Host", requests=[get("/{p}/a")])
h1("http10-no-host", "host", b"GET /{p}/a HTTP/1.0\r\n\r\n", "forwarded",
   "HTTP/1.0 without Host goes out as HTTP/1.1 with a Host",
   requests=[get("/{p}/a", host="*", version="HTTP/1.1")])
h1("h11-no-host", "host", b"GET /{p}/a HTTP/1.1\r\n\r\n", "refused", "HTTP/1.1 without Host", status=[400])
h1("host-with-path", "host", b"GET /{p}/a HTTP/1.1\r\nHost: {x}/evil\r\n\r\n", "refused",
   "a Host that is not host[:port] (RFC 9110 7.2)", status=[400])
h1("h11-two-hosts", "host", b"GET /{p}/a HTTP/1.1\r\nHost: {x}\r\nHost: {y}\r\n\r\n", "refused",
   "two Host fields", status=[400])
h1("absolute-form", "host", b"GET http://{x}/{p}/p HTTP/1.1\r\nHost: {y}\r\n\r\n", "forwarded",
   "absolute-form target for X with Host Y: the origin gets Host X; a later GET for X gets X's page",
   requests=[get("/{p}/p")], probes=[("/{p}/p", "{x}")])

# ---- Pipelining and response framing. ----
h1("pipeline-two-gets", "pipelining",
   b"GET /{p}/one HTTP/1.1\r\nHost: {x}\r\n\r\nGET /{p}/two HTTP/1.1\r\nHost: {x}\r\n\r\n",
   "forwarded", "two GETs in one write", responses=2, requests=[get("/{p}/one"), get("/{p}/two")])
h1("pipeline-post-get", "pipelining",
   b"POST /{p}/one HTTP/1.1\r\nHost: {x}\r\nContent-Length: 5\r\n\r\nhelloGET /{p}/two HTTP/1.1\r\nHost: {x}\r\n\r\n",
   "forwarded", "POST with a body then a GET, one write", responses=2,
   requests=[dict(method="POST", target="/{p}/one", host="{x}", body=b"hello"), get("/{p}/two")])
h1("http10-keepalive-chunked", "pipelining",
   b"GET /{p}/chunked HTTP/1.0\r\nHost: {x}\r\nConnection: keep-alive\r\n\r\n", "forwarded",
   "HTTP/1.0 keep-alive client, origin answers chunked: whole body, delimited, within 5 s",
   requests=[get("/{p}/chunked")], client="http10_complete")

# ---- Path normalisation (issue 12, item 6). ----
NORMALISED = [
    ("dotdot", "/{p}/api/../x", "/{p}/x"),
    ("double-slash", "/{p}/a//b", "/{p}/a/b"),
    ("dot", "/{p}/a/./b", "/{p}/a/b"),
    ("tilde", "/{p}/%7Euser", "/{p}/~user"),
    ("encoded-dotdot", "/{p}/a/%2e%2e/b", "/{p}/b"),
    ("unreserved-A", "/{p}/%41", "/{p}/A"),
    ("hex-case", "/{p}/%c3%a9", "/{p}/%C3%A9"),
    ("encoded-slash", "/{p}/a%2Fb", "/{p}/a%2Fb"),
    ("query-unchanged", "/{p}/q?a=/../b&c=%7e&d=%2f", "/{p}/q?a=/../b&c=%7e&d=%2f"),
]
for name, raw_path, want in NORMALISED:
    h1("path-" + name, "normalisation", b"GET " + raw_path.encode() + b" HTTP/1.1\r\nHost: {x}\r\n\r\n", "forwarded",
       "%s -> %s" % (raw_path, want), requests=[get(want)])
    h2("h2-path-" + name, "normalisation", h2_get(raw_path), "forwarded", "%s -> %s" % (raw_path, want),
       requests=[get(want)])
REFUSED_PATHS = [
    ("backslash", "/{p}/a\\b"),
    ("nul", "/{p}/a%00b"),
    ("bad-escape", "/{p}/%zz"),
    ("short-escape", "/{p}/%4"),
]
for name, raw_path in REFUSED_PATHS:
    h1("path-" + name, "normalisation", b"GET " + raw_path.encode() + b" HTTP/1.1\r\nHost: {x}\r\n\r\n", "refused",
       raw_path, status=[400])
    h2("h2-path-" + name, "normalisation", h2_get(raw_path), "refused", raw_path, status=[400])

# ---- Identity and routing headers (issue 12, item 12). ----
IDENTITY = [
    ("forwarded", "Forwarded: for=6.6.6.6;host=evil.test", dict(never={"forwarded": HEADERS_EVIL})),
    ("x-real-ip", "X-Real-IP: 6.6.6.6", dict(absent_or_client=["x-real-ip"])),
    ("x-original-url", "X-Original-URL: /admin", dict(never={"x-original-url": HEADERS_EVIL})),
    ("x-rewrite-url", "X-Rewrite-URL: /admin", dict(never={"x-rewrite-url": HEADERS_EVIL})),
    ("method-override", "X-HTTP-Method-Override: DELETE", dict(never={"x-http-method-override": ("DELETE",)})),
]
IDENTITY.append(("x-forwarded-for", "X-Forwarded-For: 6.6.6.6", dict(last_is_client=["x-forwarded-for"])))
for name, line, checks in IDENTITY:
    h1("identity-" + name, "identity", b"GET /{p}/a HTTP/1.1\r\nHost: {x}\r\n" + line.encode() + b"\r\n\r\n",
       "forwarded", line, requests=[get("/{p}/a", **checks)])

# ---- Refused today: keep refused (regressions). ----
REGRESSIONS = [
    ("cl-te", "Content-Length and Transfer-Encoding",
     b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(SMUGGLED)),
    ("te-xchunked", "Transfer-Encoding: xchunked",
     b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nTransfer-Encoding: xchunked\r\n\r\n" + chunked(SMUGGLED)),
    ("te-vtab", "Transfer-Encoding: <VT>chunked",
     b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nTransfer-Encoding: \x0bchunked\r\n\r\n" + chunked(SMUGGLED)),
    ("te-folded", "Transfer-Encoding folded onto a second line (' chunked')",
     b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nTransfer-Encoding:\r\n chunked\r\n\r\n" + chunked(SMUGGLED)),
    ("te-chunked-identity", "Transfer-Encoding: chunked, identity",
     b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nTransfer-Encoding: chunked, identity\r\n\r\n" + chunked(SMUGGLED)),
    ("te-duplicated", "Transfer-Encoding: chunked twice",
     b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(SMUGGLED)),
    ("te-space-before-colon", "Transfer-Encoding : chunked with a Content-Length",
     b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nContent-Length: 4\r\nTransfer-Encoding : chunked\r\n\r\n" + chunked(SMUGGLED)),
    ("cl-duplicate-equal", "Content-Length: 5 twice",
     b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
    ("cl-duplicate-differ", "Content-Length: 5 and 71",
     b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nContent-Length: 5\r\nContent-Length: 71\r\n\r\nhello" + SMUGGLED[:66]),
    ("cl-list", "Content-Length: 5, 5",
     b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nContent-Length: 5, 5\r\n\r\nhello"),
    ("cl-plus", "Content-Length: +5", b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nContent-Length: +5\r\n\r\nhello"),
    ("cl-inner-space", "Content-Length: 1 0", b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nContent-Length: 1 0\r\n\r\nhellohello"),
    ("cl-hex", "Content-Length: 0x5", b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nContent-Length: 0x5\r\n\r\nhello"),
    ("cl-negative", "Content-Length: -1", b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nContent-Length: -1\r\n\r\nhello"),
    ("obs-fold", "a folded header line", b"GET /{p}/a HTTP/1.1\r\nHost: {x}\r\nX-A: 1\r\n 2\r\n\r\n"),
    ("bare-lf", "LF line endings", b"GET /{p}/a HTTP/1.1\nHost: {x}\n\n"),
    ("bare-lf-header", "one header ended by a bare LF",
     b"GET /{p}/a HTTP/1.1\r\nHost: {x}\r\nX-A: 1\nContent-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED),
    ("space-before-colon", "Host : x", b"GET /{p}/a HTTP/1.1\r\nHost : {x}\r\n\r\n"),
    ("nul-in-value", "NUL in a header value", b"GET /{p}/a HTTP/1.1\r\nHost: {x}\r\nX-A: a\x00b\r\n\r\n"),
    ("cr-in-value", "CR in a header value", b"GET /{p}/a HTTP/1.1\r\nHost: {x}\r\nX-A: a\rX-B: b\r\n\r\n"),
    ("chunk-size-overflow", "chunk size 0xFFFFFFFFFFFFFFFFF1",
     b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\nhello\r\n0\r\n\r\n"),
    ("chunk-ext-invalid", "chunk extension with a space in its name",
     b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nTransfer-Encoding: chunked\r\n\r\n5;a b\r\nhello\r\n0\r\n\r\n"),
    ("chunk-ext-bare-lf", "chunk extension ended by a bare LF",
     b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nTransfer-Encoding: chunked\r\n\r\n5;x\nhello\r\n0\r\n\r\n"),
    ("oversized-header", "one 100 KiB header", b"GET /{p}/a HTTP/1.1\r\nHost: {x}\r\nX-Big: " + b"a" * 102400 + b"\r\n\r\n"),
    ("connect", "CONNECT", b"CONNECT {x}:443 HTTP/1.1\r\nHost: {x}:443\r\n\r\n"),
    ("method-not-token", "a method with a quote", b"G\"T /{p}/a HTTP/1.1\r\nHost: {x}\r\n\r\n"),
    ("version-invalid", "HTTP/1.2", b"GET /{p}/a HTTP/1.2\r\nHost: {x}\r\n\r\n"),
    ("refused-then-pipelined", "an invalid request with a valid one pipelined behind it: nothing of either",
     b"POST /{p}/a HTTP/1.1\r\nHost: {x}\r\nContent-Length: 5\r\nContent-Length: 69\r\n\r\nhello" + SMUGGLED),
]
for name, what, raw in REGRESSIONS:
    h1(name, "regression", raw, "refused", what)

# ---- HTTP/2 to HTTP/1.1 (issue 12, items 2, 3, 10). ----
h2("h2-baseline-get", "baseline", h2_get("/{p}/a?q=1"), "forwarded", "plain h2 GET", requests=[get("/{p}/a?q=1")])
h2("h2-baseline-post-cl", "baseline", h2_get("/{p}/form", method="POST", extra=[("content-length", "7")]),
   "forwarded", "h2 POST with content-length", data=b"abc=def",
   requests=[dict(method="POST", target="/{p}/form", host="{x}", body=b"abc=def")])
for m in ("GET", "HEAD", "DELETE"):
    h2("h2-%s-data" % m.lower(), "framing", h2_get("/{p}/a", method=m), "forwarded",
       "h2 %s with DATA holding a whole request, no content-length" % m, data=SMUGGLED,
       requests=[dict(method=m, target="/{p}/a", host="{x}", body=SMUGGLED)])
for m in ("POST", "OPTIONS"):
    h2("h2-%s-data" % m.lower(), "framing", h2_get("/{p}/a", method=m), "forwarded",
       "h2 %s with DATA, no content-length: forwarded, body intact" % m, data=b"field=value&other=1",
       requests=[dict(method=m, target="/{p}/a", host="{x}", body=b"field=value&other=1")])
h2("h2-trace-data", "framing", h2_get("/{p}/a", method="TRACE"), "refused", "h2 TRACE with DATA", data=SMUGGLED,
   status=[405])
h2("h2-cl-mismatch", "framing", h2_get("/{p}/a", method="POST", extra=[("content-length", "5")]), "refused",
   "h2 content-length 5 with 71 bytes of DATA", data=SMUGGLED)
h2("h2-transfer-encoding", "framing", h2_get("/{p}/a", method="POST", extra=[("transfer-encoding", "chunked")]),
   "refused", "h2 transfer-encoding header (connection-specific)", data=chunked(b"hello"))
h2("h2-crlf-in-value", "framing", h2_get("/{p}/a", extra=[("x-a", "1\r\nX-Injected: 1")]), "refused",
   "h2 header value with CRLF")
h2("h2-uppercase-header", "framing", h2_get("/{p}/a", extra=[("X-Upper", "1")]), "refused",
   "h2 header name with capitals (malformed, RFC 9113 8.2.1)")
h2("h2-connection-header", "framing", h2_get("/{p}/a", extra=[("connection", "keep-alive")]), "refused",
   "h2 connection header (connection-specific, malformed)")
h2("h2-duplicate-path", "framing", h2_get("/{p}/a", extra=[(":path", "/SMUGGLED")]), "refused",
   "h2 with two :path pseudo-headers")
h2("h2-pseudo-after-regular", "framing",
   [(":method", "GET"), (":scheme", "https"), (":authority", "{x}"), ("x-a", "1"), (":path", "/{p}/a")], "refused",
   "h2 pseudo-header after a regular field")
h2("h2-missing-path", "framing", [(":method", "GET"), (":scheme", "https"), (":authority", "{x}")], "refused",
   "h2 request without :path")
h2("h2-te-gzip", "framing", h2_get("/{p}/a", extra=[("te", "gzip")]), "refused",
   "h2 te other than trailers (malformed, RFC 9113 8.2.2)")
h2("h2-cl-short", "framing", h2_get("/{p}/a", method="POST", extra=[("content-length", "100")]), "refused",
   "h2 content-length 100 with 5 bytes of DATA", data=b"hello")
h2("h2-space-in-path", "framing", h2_get("/{p}/a b"), "refused", "h2 :path with a space")
h2("h2-absolute-path", "host", h2_get("http://{x}/{p}/p", authority="{y}"), "refused_or_consistent",
   ":path http://X/p with :authority Y", probes=[("/{p}/p", "{x}"), ("/{p}/p", "{y}")])
h2("h2-authority-host-differ", "host", h2_get("/{p}/a", authority="{x}", extra=[("host", "{y}")]), "refused",
   ":authority X with a host header Y")
h2("h2-method-not-token", "framing", h2_get("/{p}/a", method='X","client":"9.9.9.9'), "refused",
   ":method that is not a token")
h2("h2-identity-forwarded", "identity", h2_get("/{p}/a", extra=[("forwarded", "for=6.6.6.6;host=evil.test"),
                                                                 ("x-original-url", "/admin")]),
   "forwarded", "h2 Forwarded and X-Original-URL",
   requests=[get("/{p}/a", never={"forwarded": HEADERS_EVIL, "x-original-url": HEADERS_EVIL})])

# ---- Two sites, X and Y, each with its own recording origin. ----
h1("two-route-x", "two-site", b"GET /{p}/a HTTP/1.1\r\nHost: {x}\r\n\r\n", "forwarded", "Host X goes to X's origin",
   sites="two", requests=[get("/{p}/a", origin="{x}")])
h1("two-route-y", "two-site", b"GET /{p}/a HTTP/1.1\r\nHost: {y}\r\n\r\n", "forwarded", "Host Y goes to Y's origin",
   sites="two", requests=[get("/{p}/a", host="{y}", origin="{y}")])
h1("two-pipeline-x-then-y", "two-site",
   b"GET /{p}/one HTTP/1.1\r\nHost: {x}\r\n\r\nGET /{p}/two HTTP/1.1\r\nHost: {y}\r\n\r\n", "forwarded",
   "two requests in one write, for X then Y: each to its own site's origin", sites="two", responses=2,
   requests=[get("/{p}/one", origin="{x}"), get("/{p}/two", host="{y}", origin="{y}")])
h1("two-absolute-form", "two-site", b"GET http://{x}/{p}/p HTTP/1.1\r\nHost: {y}\r\n\r\n", "forwarded",
   "absolute-form for X with Host Y: X's origin, Host X", sites="two",
   requests=[get("/{p}/p", origin="{x}")], probes=[("/{p}/p", "{x}"), ("/{p}/p", "{y}")])
h1("two-absolute-form-reverse", "two-site", b"GET http://{y}/{p}/p HTTP/1.1\r\nHost: {x}\r\n\r\n", "forwarded",
   "absolute-form for Y with Host X: Y's origin, Host Y", sites="two",
   requests=[get("/{p}/p", host="{y}", origin="{y}")], probes=[("/{p}/p", "{y}"), ("/{p}/p", "{x}")])
h1("two-absolute-form-unknown", "two-site", b"GET http://{z}/{p}/p HTTP/1.1\r\nHost: {x}\r\n\r\n", "refused",
   "absolute-form for a host no site claims, with Host X", sites="two")
h1("two-unknown-host", "two-site", b"GET /{p}/a HTTP/1.1\r\nHost: {z}\r\n\r\n", "refused",
   "a Host no site claims", sites="two")
h2("two-h2-absolute-path", "two-site", h2_get("http://{x}/{p}/p", authority="{y}"), "refused_or_consistent",
   ":path http://X/p with :authority Y", sites="two", probes=[("/{p}/p", "{x}"), ("/{p}/p", "{y}")])
h2("two-h2-authority-host-differ", "two-site", h2_get("/{p}/a", authority="{x}", extra=[("host", "{y}")]),
   "refused", ":authority X with a host header Y", sites="two")
