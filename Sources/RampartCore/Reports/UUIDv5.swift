import Crypto
import Foundation

/// Name-based UUIDs (RFC 9562 version 5, SHA-1): the same name gives the same id, so a report
/// generated twice for one incident carries the same STIX and MISP identifiers.
package enum UUIDv5 {
    /// The namespace STIX 2.1 uses for cyber-observable ids (STIX 2.1 §2.9).
    package static let stixObservables = UUID(uuidString: "00abedb4-aa42-466c-9c01-fed23315a9b7")!
    /// Rampart's namespace for report objects (itself the v5 UUID of "rampart.incident-report" in
    /// the DNS namespace).
    package static let rampart = make(namespace: UUID(uuidString: "6ba7b810-9dad-11d1-80b4-00c04fd430c8")!, name: "rampart.incident-report")

    /// The v5 UUID of `name` in `namespace`.
    package static func make(namespace: UUID, name: String) -> UUID {
        var bytes = withUnsafeBytes(of: namespace.uuid) { Array($0) }
        bytes.append(contentsOf: Array(name.utf8))
        var h = Array(Insecure.SHA1.hash(data: bytes).prefix(16))
        h[6] = (h[6] & 0x0F) | 0x50
        h[8] = (h[8] & 0x3F) | 0x80
        let t = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15])
        return UUID(uuid: t)
    }

    /// Lower-case text form, as STIX and MISP write it.
    package static func string(namespace: UUID = rampart, _ name: String) -> String {
        make(namespace: namespace, name: name).uuidString.lowercased()
    }
}
