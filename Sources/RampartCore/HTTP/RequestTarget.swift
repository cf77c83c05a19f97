/// The one normal form of a request's path, which every rule, the cache key and the forwarded
/// request see (RFC 3986 6.2.2): percent-encoded unreserved characters decoded, other escapes in
/// upper case, characters a path may not carry escaped, duplicate slashes merged, dot segments
/// removed. What cannot be normalised without guessing how the origin reads it is refused: a raw
/// backslash (IIS and some frameworks read it as a slash), an encoded NUL, a malformed escape, a
/// control character, and dot segments next to an encoded slash (`/a%2F..%2Fadmin`).
/// The query is kept as sent.
public enum RequestTarget {
    /// Why a target was refused.
    public enum Refusal: String, Error, Sendable {
        case notOriginForm = "the path does not start with '/'"
        case backslash = "backslash in the path"
        case badEscape = "malformed percent-escape"
        case encodedNul = "encoded NUL"
        case controlCharacter = "control character in the path"
        case ambiguousSlash = "dot segment next to an encoded slash"
    }

    /// The normal form of an origin-form target (`/path?query`), or why it is refused.
    /// Targets already in normal form (nearly all) are returned as they are, without allocating.
    public static func normalise(_ target: String) -> Result<String, Refusal> {
        let utf8 = target.utf8
        guard utf8.first == UInt8(ascii: "/") else { return .failure(.notOriginForm) }
        // Fast path: nothing to decode, escape, merge or remove.
        var previous: UInt8 = 0
        for b in utf8 {
            if b == UInt8(ascii: "?") { return .success(target) }
            if !isPlainPathByte(b) || (previous == UInt8(ascii: "/") && (b == UInt8(ascii: "/") || b == UInt8(ascii: "."))) {
                return slow(Array(utf8))
            }
            previous = b
        }
        return .success(target)
    }

    /// Letters, digits, `-._~`, sub-delims, `:` `@` `/`: bytes a normal path carries as they are.
    @inline(__always)
    static func isPlainPathByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"), UInt8(ascii: ":"),
            UInt8(ascii: "@"), UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("),
            UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="):
            return true
        default:
            return false
        }
    }

    @inline(__always)
    static func isUnreserved(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    @inline(__always)
    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    private static func slow(_ bytes: [UInt8]) -> Result<String, Refusal> {
        let queryStart = bytes.firstIndex(of: UInt8(ascii: "?")) ?? bytes.count
        // 1. Escapes: decode unreserved, upper-case the rest, escape what a path may not carry.
        var path: [UInt8] = []
        path.reserveCapacity(queryStart + 8)
        var encodedSlash = false
        var i = 0
        while i < queryStart {
            let b = bytes[i]
            if b == UInt8(ascii: "%") {
                guard i + 2 < queryStart, let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2])
                else { return .failure(.badEscape) }
                let v = hi << 4 | lo
                if v == 0 { return .failure(.encodedNul) }
                if isUnreserved(v) {
                    path.append(v)
                } else {
                    if v == UInt8(ascii: "/") || v == UInt8(ascii: "\\") { encodedSlash = true }
                    path.append(UInt8(ascii: "%"))
                    path.append(hexDigits[Int(hi)])
                    path.append(hexDigits[Int(lo)])
                }
                i += 3
                continue
            }
            if b == UInt8(ascii: "\\") { return .failure(.backslash) }
            if b < 0x20 || b == 0x7F { return .failure(.controlCharacter) }
            if isPlainPathByte(b) {
                path.append(b)
            } else {
                path.append(UInt8(ascii: "%"))
                path.append(hexDigits[Int(b >> 4)])
                path.append(hexDigits[Int(b & 0xF)])
            }
            i += 1
        }
        // 2. Segments: merge empty ones (duplicate slashes), remove `.` and `..` (RFC 3986 5.2.4;
        // `..` above the root stays at the root).
        let dot: [UInt8] = [UInt8(ascii: ".")]
        let dotDot: [UInt8] = [UInt8(ascii: "."), UInt8(ascii: ".")]
        let segments = path.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        var out: [ArraySlice<UInt8>] = []
        var trailingSlash = false
        for (n, segment) in segments.enumerated() {
            let last = n == segments.count - 1
            if segment.isEmpty || segment.elementsEqual(dot) || segment.elementsEqual(dotDot) {
                if !segment.isEmpty, encodedSlash { return .failure(.ambiguousSlash) }
                if segment.elementsEqual(dotDot), !out.isEmpty { out.removeLast() }
                if last { trailingSlash = true }
                continue
            }
            if encodedSlash, containsDotSegmentAcrossEncodedSlash(Array(segment)) { return .failure(.ambiguousSlash) }
            out.append(segment)
            if last { trailingSlash = false }
        }
        var result: [UInt8] = [UInt8(ascii: "/")]
        result.reserveCapacity(path.count + (bytes.count - queryStart) + 1)
        for (n, segment) in out.enumerated() {
            if n > 0 { result.append(UInt8(ascii: "/")) }
            result.append(contentsOf: segment)
        }
        if trailingSlash, !out.isEmpty { result.append(UInt8(ascii: "/")) }
        result.append(contentsOf: bytes[queryStart...])
        return .success(String(decoding: result, as: UTF8.self))
    }

    /// True when a segment that holds `%2F`/`%5C` has `.` or `..` between its encoded slashes
    /// (`..%2Fadmin`, `a%2F..`): an origin that decodes the slash would resolve it.
    private static func containsDotSegmentAcrossEncodedSlash(_ segment: [UInt8]) -> Bool {
        var parts: [[UInt8]] = [[]]
        var k = 0
        while k < segment.count {
            if segment[k] == UInt8(ascii: "%"), k + 2 < segment.count,
                (segment[k + 1] == UInt8(ascii: "2") && segment[k + 2] == UInt8(ascii: "F"))
                    || (segment[k + 1] == UInt8(ascii: "5") && segment[k + 2] == UInt8(ascii: "C"))
            {
                parts.append([])
                k += 3
                continue
            }
            parts[parts.count - 1].append(segment[k])
            k += 1
        }
        guard parts.count > 1 else { return false }
        return parts.contains { $0 == [UInt8(ascii: ".")] || $0 == [UInt8(ascii: "."), UInt8(ascii: ".")] }
    }
}
