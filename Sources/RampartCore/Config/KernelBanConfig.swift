#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whether and how bans are pushed into the kernel firewall (`bans.kernel*` in the config), so a
/// banned source's packets are dropped before the gateway pays for accepting its connections.
package struct KernelBanConfig: Hashable, Sendable {
    /// Which kernel firewall gets the bans.
    package enum Kind: String, Hashable, Sendable, CaseIterable {
        /// None: bans stay in user space (refused at accept).
        case off
        /// An nftables table the gateway owns (`table inet rampart`), through libnftables.
        case nftables
    }

    /// What happens to the table when the gateway stops.
    package enum OnExit: String, Hashable, Sendable, CaseIterable {
        /// Leave it: bans keep being dropped until their timeouts end (a restart reconciles them).
        case keep
        /// Delete the table.
        case flush
    }

    /// Which packets of a banned source are dropped.
    package enum Ports: String, Hashable, Sendable, CaseIterable {
        /// TCP to the gateway's listening ports only (the default).
        case listeners
        /// Every packet from the source, whatever the port or protocol.
        case all
    }

    /// Where the drop happens.
    package enum Hook: String, Hashable, Sendable, CaseIterable {
        /// `prerouting`, priority -300 (before conntrack): cheapest, no conntrack entry is made.
        case prerouting
        /// `input`, priority -150 (after conntrack, before the usual filter chains at 0).
        case input
    }

    package var kind: Kind = .off
    /// The nftables table (family `inet`); the gateway deletes and recreates it at start.
    package var table = "rampart"
    package var onExit: OnExit = .keep
    package var ports: Ports = .listeners
    package var hook: Hook = .prerouting

    package init() {}

    /// True when this machine has libnftables or the `nft` binary.
    package static var nftablesInstalled: Bool {
        if let handle = dlopen("libnftables.so.1", RTLD_LAZY) {
            dlclose(handle)
            return true
        }
        let binaries: [String] = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/bin/nft"]
        return binaries.contains { access($0, X_OK) == 0 }
    }

    /// True for a name nftables accepts as a table name and that needs no quoting.
    package static func isValidTableName(_ name: String) -> Bool {
        let u = Array(name.utf8)
        guard let first = u.first, u.count <= 32, (first | 0x20) >= UInt8(ascii: "a"), (first | 0x20) <= UInt8(ascii: "z") else { return false }
        return u.allSatisfy { c in
            (c | 0x20 >= UInt8(ascii: "a") && c | 0x20 <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "_")
        }
    }
}
