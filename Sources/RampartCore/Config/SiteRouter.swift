/// Maps a request's `Host` to a site. Built once per config load; lookups do not allocate for the
/// common case of an exact, lowercase host name.
public struct SiteRouter: Sendable {
    private let exact: [String: Int]
    private let suffixes: [(suffix: String, site: Int)]
    private let catchAll: Int?
    private let fallback: Int?

    /// Builds the router from the sites' host patterns. `defaultSite` answers unknown hosts.
    public init(sites: [SiteConfig], defaultSite: String?) {
        var exact: [String: Int] = [:]
        var suffixes: [(String, Int)] = []
        var catchAll: Int? = nil
        for (i, site) in sites.enumerated() {
            for h in site.hosts {
                if h == "*" {
                    catchAll = catchAll ?? i
                } else if h.hasPrefix("*.") {
                    suffixes.append((String(h.dropFirst(1)), i))  // ".example.org"
                } else {
                    exact[h] = exact[h] ?? i
                }
            }
        }
        // Longest suffix first, so *.a.example.org wins over *.example.org.
        self.suffixes = suffixes.sorted { $0.0.count > $1.0.count }
        self.exact = exact
        self.catchAll = catchAll
        self.fallback = defaultSite.flatMap { name in sites.firstIndex { $0.name == name } }
    }

    /// True for `*`, `*.name` and plain host names made of letters, digits, '-' and '.'.
    public static func isValidPattern(_ pattern: String) -> Bool {
        if pattern == "*" { return true }
        let name = pattern.hasPrefix("*.") ? String(pattern.dropFirst(2)) : pattern
        guard !name.isEmpty, name.count <= 253 else { return false }
        return name.utf8.allSatisfy { b in
            (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x2E
        } && !name.hasPrefix(".") && !name.hasSuffix(".")
    }

    /// The site index for a `Host` header value (port and a trailing dot ignored), or nil when no
    /// site claims it and there is no default site.
    public func route(host: String?) -> Int? {
        guard let raw = host, !raw.isEmpty else { return catchAll ?? fallback }
        let name = Self.normalise(raw)
        if let i = exact[name] { return i }
        for (suffix, i) in suffixes where name.hasSuffix(suffix) { return i }
        return catchAll ?? fallback
    }

    /// Lowercases and strips the port (`Example.org:8080` -> `example.org`, `[::1]:80` -> `[::1]`).
    static func normalise(_ host: String) -> String {
        var h = Substring(host)
        if h.hasPrefix("[") {
            if let close = h.firstIndex(of: "]") { h = h[...close] }
        } else if let colon = h.lastIndex(of: ":") {
            h = h[..<colon]
        }
        if h.hasSuffix(".") { h = h.dropLast() }
        // Fast path: already lowercase.
        if h.utf8.allSatisfy({ !($0 >= 0x41 && $0 <= 0x5A) }) { return String(h) }
        return h.lowercased()
    }
}
