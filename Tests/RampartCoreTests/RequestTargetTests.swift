import Testing

@testable import RampartCore

@Suite struct RequestTargetTests {
    @Test(arguments: [
        ("/", "/"),
        ("/index.html?q=1", "/index.html?q=1"),
        ("/api/../x", "/x"),
        ("/a//b", "/a/b"),
        ("//evil.example/", "/evil.example/"),
        ("/a/./b", "/a/b"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/%7Euser", "/~user"),
        ("/a/%2e%2e/b", "/b"),
        ("/a/%2E/b", "/a/b"),
        ("/%41", "/A"),
        ("/%c3%a9", "/%C3%A9"),
        ("/caf\u{e9}", "/caf%C3%A9"),
        ("/a b".replacingOccurrences(of: " ", with: "%20"), "/a%20b"),
        ("/group%2Fproject", "/group%2Fproject"),
        ("/x?a=/../&b=%2e", "/x?a=/../&b=%2e"),
        ("/.well-known/acme", "/.well-known/acme"),
        ("/a/", "/a/"),
        ("/a//", "/a/"),
    ])
    func normalises(_ input: String, _ expected: String) throws {
        #expect(try RequestTarget.normalise(input).get() == expected)
    }

    @Test(arguments: [
        ("/\\evil.example/", RequestTarget.Refusal.backslash),
        ("/a\\..\\admin", .backslash),
        ("/%00", .encodedNul),
        ("/%zz", .badEscape),
        ("/%4", .badEscape),
        ("/%", .badEscape),
        ("/a%2F..%2Fadmin", .ambiguousSlash),
        ("/api%2F%2E%2E%2Fadmin", .ambiguousSlash),
        ("/a%5C..", .ambiguousSlash),
        ("x/y", .notOriginForm),
    ])
    func refuses(_ input: String, _ why: RequestTarget.Refusal) {
        guard case .failure(let f) = RequestTarget.normalise(input) else {
            Issue.record("\(input) must be refused")
            return
        }
        #expect(f == why)
    }

    @Test func normalFormIsAFixedPoint() throws {
        for input in ["/a/../b//c/./%7e%41?x", "/%c3%a9/..", "/a/b/../../../c/", "/x%2Fy/z"] {
            let once = try RequestTarget.normalise(input).get()
            #expect(try RequestTarget.normalise(once).get() == once)
        }
    }
}
