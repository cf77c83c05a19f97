import Foundation
import Logging
import NIOConcurrencyHelpers
import RampartDataPlane

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Posts alert events as JSON to the configured webhooks (Slack, Matrix hookshot, or anything
/// that reads a `text` field), retried with exponential back-off. Never on the data plane: the
/// detection service hands events over and returns; at most `maxPending` deliveries wait at once,
/// beyond that new ones are dropped and logged.
public final class WebhookSender: Sendable {
    private let urls: [URL]
    private let logger: Logger
    private let pending = NIOLockedValueBox(0)
    static let maxPending = 1000
    static let attempts = 5

    public init(urls: [String], logger: Logger) {
        self.urls = urls.compactMap { URL(string: $0) }
        self.logger = logger
    }

    public func send(_ event: AlertEvent) {
        guard !urls.isEmpty else { return }
        var body = (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(event))) as? [String: Any] ?? [:]
        body["text"] = event.text
        body["time"] = ISO8601DateFormatter().string(from: Date())
        guard let data = try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys]) else { return }
        for url in urls {
            let admitted = pending.withLockedValue { n -> Bool in
                guard n < Self.maxPending else { return false }
                n += 1
                return true
            }
            guard admitted else {
                logger.warning("alert dropped: too many webhook deliveries pending", metadata: ["url": "\(url)"])
                continue
            }
            let logger = self.logger
            let pending = self.pending
            Task.detached {
                defer { pending.withLockedValue { $0 -= 1 } }
                var delay: UInt64 = 1_000_000_000
                for attempt in 1...Self.attempts {
                    var request = URLRequest(url: url, timeoutInterval: 5)
                    request.httpMethod = "POST"
                    request.setValue("application/json", forHTTPHeaderField: "Content-Type")
                    request.httpBody = data
                    if let (_, response) = try? await URLSession.shared.data(for: request),
                        let status = (response as? HTTPURLResponse)?.statusCode, (200..<300).contains(status)
                    {
                        return
                    }
                    if attempt == Self.attempts {
                        logger.error("alert webhook failed; giving up", metadata: ["url": "\(url)", "attempts": "\(attempt)"])
                        return
                    }
                    try? await Task.sleep(nanoseconds: delay)
                    delay = min(delay * 2, 30_000_000_000)
                }
            }
        }
    }
}
