import NIOCore
import NIOHTTP1

/// The short pages the gateway answers with itself: status, one sentence and the request id; HTML
/// by default, JSON for `Accept: application/json`. Never a stack trace or an internal address.
public enum ErrorPage {
    /// A page with everything but the request id rendered: answering a flood of refusals then
    /// costs a few buffer writes, not string formatting.
    public struct Template: Sendable {
        let prefix: String
        let suffix: String
        let contentType: String
        let status: HTTPResponseStatus

        /// Renders the head and body for one request.
        public func render(
            requestID: String,
            close: Bool,
            retryAfterSeconds: Int? = nil,
            version: HTTPVersion = .http1_1,
            allocator: ByteBufferAllocator
        ) -> (HTTPResponseHead, ByteBuffer) {
            var buffer = allocator.buffer(capacity: prefix.utf8.count + requestID.utf8.count + suffix.utf8.count)
            buffer.writeString(prefix)
            buffer.writeString(requestID)
            buffer.writeString(suffix)
            var headers = HTTPHeaders()
            headers.reserveCapacity(7)
            headers.add(name: "Content-Type", value: contentType)
            headers.add(name: "Content-Length", value: String(buffer.readableBytes))
            headers.add(name: "Cache-Control", value: "no-store")
            headers.add(name: "X-Request-Id", value: requestID)
            if let retryAfterSeconds { headers.add(name: "Retry-After", value: String(retryAfterSeconds)) }
            if close { headers.add(name: "Connection", value: "close") }
            return (HTTPResponseHead(version: version, status: status, headers: headers), buffer)
        }
    }

    /// The template for a status and message, as HTML or JSON.
    public static func template(status: HTTPResponseStatus, message: String, json: Bool) -> Template {
        let title = "\(status.code) \(status.reasonPhrase)"
        if json {
            return Template(
                prefix: #"{"status":\#(status.code),"error":"\#(escapeJSON(status.reasonPhrase))","message":"\#(escapeJSON(message))","request_id":""#,
                suffix: "\"}\n",
                contentType: "application/json",
                status: status
            )
        }
        return Template(
            prefix: """
                <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>\(title)</title>\
                <style>body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#222}small{color:#666}</style></head>\
                <body><h1>\(title)</h1><p>\(escapeHTML(message))</p><p><small>Request ID: 
                """,
            suffix: "</small></p></body></html>\n",
            contentType: "text/html; charset=utf-8",
            status: status
        )
    }

    /// Renders the response head and body for `status`.
    public static func render(
        status: HTTPResponseStatus,
        message: String,
        requestID: String,
        json: Bool,
        close: Bool,
        retryAfterSeconds: Int? = nil,
        allocator: ByteBufferAllocator
    ) -> (HTTPResponseHead, ByteBuffer) {
        template(status: status, message: message, json: json)
            .render(requestID: requestID, close: close, retryAfterSeconds: retryAfterSeconds, allocator: allocator)
    }

    /// True when the client asked for JSON first.
    public static func wantsJSON(_ headers: HTTPHeaders) -> Bool {
        guard let accept = headers.first(name: "accept") else { return false }
        return accept.contains("application/json") && !accept.hasPrefix("text/html")
    }

    static func escapeHTML(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }

    static func escapeJSON(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if c.value < 0x20 { out += "\\u00" + (c.value < 0x10 ? "0" : "") + String(c.value, radix: 16) } else { out.unicodeScalars.append(c) }
            }
        }
        return out
    }
}
