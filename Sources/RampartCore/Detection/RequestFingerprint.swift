import NIOHTTP1

/// A request fingerprint for grouping clients: what one client software sends the same way on
/// every request, pages and sub-resources alike. Browsers send different `Accept`, `Sec-Fetch-*`
/// and `Upgrade-Insecure-Requests` for a page and for its stylesheet, so those are left out (a
/// fingerprint that split one browser's pages from its assets would make every browser look like a
/// bot); kept are the user agent, `Accept-Language` and `Accept-Encoding` as sent, whether an
/// `Accept` header is sent at all, the HTTP version and the connection's JA4 TLS fingerprint.
///
/// Thousands of bots run by one tool share it (or a handful of them, when they rotate user
/// agents); people with one browser build share it with each other, not with the bots. Used by
/// ``BehaviourScore`` as a group key. FNV-1a over the bytes: no allocation.
public enum RequestFingerprint {
    /// The fingerprint of a request's headers, HTTP major version and JA4 (nil without TLS).
    public static func of(_ headers: HTTPHeaders, httpMajor: Int, ja4: String?) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        @inline(__always) func mix(_ b: UInt8) {
            h = (h ^ UInt64(b)) &* 0x100_0000_01B3
        }
        func mix(_ s: String?) {
            if let s { for b in s.utf8 { mix(b) } }
            mix(0xFF)
        }
        mix(headers.first(name: "user-agent"))
        mix(headers.first(name: "accept-language"))
        mix(headers.first(name: "accept-encoding"))
        mix(headers.contains(name: "accept") ? 1 : 0)
        mix(UInt8(truncatingIfNeeded: httpMajor))
        mix(ja4)
        return h
    }
}
