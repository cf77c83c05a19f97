/// How a report is built: options from the config, its errors, and how it names sources.

import Crypto
import Foundation

/// Options the report builder takes from the config and the state folder.
package struct ReportOptions: Sendable {
    /// The `reports:` section.
    package var config: ReportConfig
    /// Key for `hashed` sources; required in that mode.
    package var hashKey: SymmetricKey?

    /// Options from the config and, for `hashed`, the pseudonym key.
    package init(config: ReportConfig = ReportConfig(), hashKey: SymmetricKey? = nil) {
        self.config = config
        self.hashKey = hashKey
    }

    /// The pseudonym key derived from the gateway's signing secret (HKDF-SHA-256), so the same
    /// source gets the same pseudonym in every report of this gateway and only its operator can
    /// match it back.
    package static func hashKey(fromSigningSecret secret: [UInt8]) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: secret), info: Data("rampart incident report source pseudonyms".utf8), outputByteCount: 32
        )
    }
}

/// Why a report cannot be built.
package struct ReportError: Error, Equatable, CustomStringConvertible {
    /// What is wrong.
    package var description: String
    /// An error saying `description`.
    package init(_ description: String) { self.description = description }
}

/// Turns addresses into what the report may show.
struct SourceNamer {
    let disclosure: SourceDisclosure
    let key: SymmetricKey?

    /// An address or an address block as disclosed.
    func name(_ text: String) -> String {
        switch disclosure {
        case .full:
            return text
        case .subnet:
            if text.contains("/") { return text }
            return IPAddress(text)?.defaultSubnet.defaultSubnetDescription ?? text
        case .hashed:
            guard let key else { return "anon-unavailable" }
            let mac = HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: key)
            return "anon-" + mac.prefix(8).map { String(format: "%02x", $0) }.joined()
        }
    }

    /// `entries` with their keys disclosed; entries that map to the same name are added up.
    func entries(_ entries: [TopEntry]) -> [TopEntry] {
        var order: [String] = []
        var counts: [String: Int] = [:]
        for e in entries {
            let n = name(e.key)
            if counts[n] == nil { order.append(n) }
            counts[n, default: 0] += e.count
        }
        return order.map { TopEntry(key: $0, count: counts[$0]!) }.sorted { $0.count > $1.count }
    }
}
