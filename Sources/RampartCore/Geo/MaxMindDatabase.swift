#if RAMPART_MAXMINDDB
import CMaxMindDB
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A MaxMind DB file (`.mmdb`: DB-IP Lite, GeoLite2) opened with libmaxminddb, memory-mapped.
/// Lookups only read the mapping, so one instance serves every event loop (libmaxminddb documents
/// lookups on an opened database as thread-safe).
package final class MaxMindDatabase: @unchecked Sendable {
    private let db: UnsafeMutablePointer<MMDB_s>
    /// The file, for messages.
    package let path: String
    /// The database's own name for its type, e.g. `DBIP-Country-Lite` or `GeoLite2-ASN`.
    package let databaseType: String
    /// NUL-terminated path segments for `MMDB_aget_value`, allocated once.
    private let segments: [String: UnsafeMutablePointer<CChar>]

    /// Opens `path`; throws with libmaxminddb's reason when it is missing or not a valid database.
    package init(path: String) throws(GeoDataError) {
        let db = UnsafeMutablePointer<MMDB_s>.allocate(capacity: 1)
        let status = MMDB_open(path, UInt32(MMDB_MODE_MMAP), db)
        guard status == MMDB_SUCCESS else {
            db.deallocate()
            let why = String(cString: MMDB_strerror(status))
            throw GeoDataError("cannot open the MaxMind DB file '\(path)': \(why)")
        }
        self.db = db
        self.path = path
        self.databaseType = db.pointee.metadata.database_type.map { String(cString: $0) } ?? "unknown"
        var segments: [String: UnsafeMutablePointer<CChar>] = [:]
        for name in ["country", "registered_country", "iso_code", "autonomous_system_number", "autonomous_system_organization"] {
            segments[name] = strdup(name)
        }
        self.segments = segments
    }

    deinit {
        MMDB_close(db)
        db.deallocate()
        for p in segments.values { free(p) }
    }

    /// The record for `address`, nil when the database holds none (or the lookup failed).
    private func entry(_ address: IPAddress) -> MMDB_entry_s? {
        var status: Int32 = 0
        let result: MMDB_lookup_result_s
        if let v4 = address.v4Value {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_addr.s_addr = v4.bigEndian
            result = withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { MMDB_lookup_sockaddr(db, $0, &status) }
            }
        } else {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { raw in
                for i in 0..<8 {
                    raw[i] = UInt8(truncatingIfNeeded: address.high >> (56 - 8 * UInt64(i)))
                    raw[8 + i] = UInt8(truncatingIfNeeded: address.low >> (56 - 8 * UInt64(i)))
                }
            }
            result = withUnsafePointer(to: &sin6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { MMDB_lookup_sockaddr(db, $0, &status) }
            }
        }
        guard status == MMDB_SUCCESS, result.found_entry else { return nil }
        return result.entry
    }

    /// The value at `path` inside `entry`, nil when absent or on a data error.
    private func value(_ entry: MMDB_entry_s, _ path: [String]) -> MMDB_entry_data_s? {
        var entry = entry
        var data = MMDB_entry_data_s()
        var pointers: [UnsafePointer<CChar>?] = path.map { UnsafePointer(segments[$0]!) }
        pointers.append(nil)
        let status = pointers.withUnsafeBufferPointer { MMDB_aget_value(&entry, &data, $0.baseAddress) }
        guard status == MMDB_SUCCESS, data.has_data else { return nil }
        return data
    }

    /// The country of `address` (`country.iso_code`, else `registered_country.iso_code`).
    package func country(_ address: IPAddress) -> CountryCode? {
        guard let entry = entry(address) else { return nil }
        for path in [["country", "iso_code"], ["registered_country", "iso_code"]] {
            if let data = value(entry, path), data.type == UInt32(MMDB_DATA_TYPE_UTF8_STRING), data.data_size == 2,
                let text = data.utf8_string
            {
                return text.withMemoryRebound(to: UInt8.self, capacity: 2) { CountryCode($0[0], $0[1]) }
            }
        }
        return nil
    }

    /// The autonomous system number of `address` (`autonomous_system_number`), nil when none.
    package func asn(_ address: IPAddress) -> UInt32? {
        guard let entry = entry(address), let data = value(entry, ["autonomous_system_number"]) else { return nil }
        let n: UInt64
        switch Int32(data.type) {
        case MMDB_DATA_TYPE_UINT32: n = UInt64(data.uint32)
        case MMDB_DATA_TYPE_UINT16: n = UInt64(data.uint16)
        case MMDB_DATA_TYPE_UINT64: n = data.uint64
        case MMDB_DATA_TYPE_INT32: n = UInt64(max(0, data.int32))
        default: return nil
        }
        guard n > 0, n <= UInt64(UInt32.max) else { return nil }
        return UInt32(n)
    }

    /// The organisation holding the network of `address`, nil when the database names none.
    package func organisation(_ address: IPAddress) -> String? {
        guard let entry = entry(address), let data = value(entry, ["autonomous_system_organization"]),
            data.type == UInt32(MMDB_DATA_TYPE_UTF8_STRING), let text = data.utf8_string
        else { return nil }
        let bytes = UnsafeRawBufferPointer(start: text, count: Int(data.data_size))
        return String(decoding: bytes, as: UTF8.self)
    }
}
#endif
