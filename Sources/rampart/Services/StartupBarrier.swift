/// What `serve` waits for before it gives up root and announces the gateway: every listener bound
/// and, when enabled, the admin listener. Services report through ``report(_:)``; the group's end
/// (a failure before everything came up) finishes the wait with `false`.
struct StartupBarrier: Sendable {
    /// A part that came up.
    enum Part: Sendable {
        case listeners
        case admin
    }

    private let stream: AsyncStream<Part>
    private let continuation: AsyncStream<Part>.Continuation
    private let expected: Set<Part>

    init(expecting expected: Set<Part>) {
        (stream, continuation) = AsyncStream.makeStream(of: Part.self)
        self.expected = expected
    }

    func report(_ part: Part) { continuation.yield(part) }

    /// Called when the service group has ended: nothing more will come up.
    func finish() { continuation.finish() }

    /// True once every expected part came up; false if the group ended first.
    func wait() async -> Bool {
        var seen: Set<Part> = []
        for await part in stream {
            seen.insert(part)
            if seen.isSuperset(of: expected) { return true }
        }
        return false
    }
}
