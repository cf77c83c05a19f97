import NIOCore
import NIOHTTP1
import RampartCore

/// Response phase, last: the head the client gets. The client's HTTP version; hop-by-hop headers
/// of the origin's connection gone (``ForwardingHeaders/prepareResponse(_:)``); a body of unknown
/// length to an HTTP/1.0 client ends with the connection; `Connection: close` when this is the
/// connection's last answer (or the gateway is draining), `keep-alive` for HTTP/1.0 otherwise;
/// the clearance handed out with this request and the session companion (``SessionBinding``); HSTS on HTTPS when the site sets it.
///
/// In two steps, with the cache fill between them: what is true of the response for anyone
/// (``prepare(_:response:)``, stored in the cache), then what belongs to this client only
/// (``finish(_:response:loop:)``, never stored).
enum ResponseHeadersPhase {
    static func prepare(_ request: inout RequestContext, response: inout HTTPResponseHead) {
        let version = request.head.version
        let code = response.status.code
        // Setting it copies the head's shared storage: only when it differs (an HTTP/1.0 client).
        if response.version != version { response.version = version }
        ForwardingHeaders.prepareResponse(&response.headers)
        if version == .http1_0, request.keepAlive, request.head.method != .HEAD, code >= 200, code != 204, code != 304,
            !response.headers.contains(name: "content-length")
        {
            request.keepAlive = false
        }
    }

    static func finish(_ request: inout RequestContext, response: inout HTTPResponseHead, loop: LoopContext) {
        connectionHeader(&request, headers: &response.headers, loop: loop)
        if let setCookie = request.setCookie { response.headers.add(name: "Set-Cookie", value: setCookie) }
        if let companion = request.sessionCompanion { response.headers.add(name: "Set-Cookie", value: companion) }
        if request.connection.scheme == "https", let hsts = request.site?.config.hsts {
            response.headers.replaceOrAdd(name: "Strict-Transport-Security", value: hsts)
        }
    }

    /// `Connection: close` on the connection's last answer (also once the gateway drains), and
    /// `keep-alive` to an HTTP/1.0 client that may send another request.
    static func connectionHeader(_ request: inout RequestContext, headers: inout HTTPHeaders, loop: LoopContext) {
        if !request.keepAlive || loop.draining {
            request.keepAlive = false
            headers.add(name: "Connection", value: "close")
        } else if request.head.version == .http1_0 {
            headers.add(name: "Connection", value: "keep-alive")
        }
    }
}
