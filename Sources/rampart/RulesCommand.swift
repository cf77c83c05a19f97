import ArgumentParser
import Foundation
import RampartCore

/// `rampart rules`: operators' runtime rules on a running gateway (in a fleet, on every node).
struct Rules: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add, list and remove runtime allow and deny rules on a running gateway (fleet-wide in a fleet).",
        subcommands: [Add.self, List.self, Remove.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Allow (priority in origin queues) or deny (403) an address block.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "allow or deny.") var action: String
        @Argument(help: "CIDR block or one address.") var block: String
        @Option(name: .long, help: "Only this site (default: every site).") var site: String?
        @Option(name: .long, help: "Seconds (default: until removed).") var ttl: Int?
        @Option(name: .long, help: "Why (shown in lists).") var reason: String = "manual"

        func validate() throws {
            guard OperatorRule.Action(rawValue: action) != nil else { throw ValidationError("the action must be allow or deny") }
            guard CIDR(block) != nil else { throw ValidationError("'\(block)' is not an address or a CIDR block") }
        }

        func run() async throws {
            var body: [String: Any] = ["action": action, "block": block, "reason": reason]
            if let site { body["site"] = site }
            if let ttl { body["ttl"] = ttl }
            let rule = try await options.json("POST", "/api/rules", body: body) as? [String: Any] ?? [:]
            print("rule \(rule["id"] as? String ?? "?"): \(action) \(rule["cidr"] as? String ?? block)\(site.map { " on \($0)" } ?? "")")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the runtime rules in force.")
        @OptionGroup var options: AdminOptions

        func run() async throws {
            let rules = try await options.json("GET", "/api/rules") as? [[String: Any]] ?? []
            print("ID                ACTION  BLOCK                                       SITE        ENDS                  REASON")
            for r in rules {
                let until = r["until"] as? Int ?? 0
                let ends = until == 0 ? "never" : ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(until)))
                print([pad(r["id"] as? String ?? "", 16), pad(r["action"] as? String ?? "", 6), pad(r["cidr"] as? String ?? "", 43),
                       pad(r["site"] as? String ?? "*", 10), pad(ends, 20), r["reason"] as? String ?? ""].joined(separator: "  "))
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a runtime rule.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The rule's id (see `rampart rules list`).") var id: String

        func run() async throws {
            _ = try await options.json("DELETE", "/api/rules/\(id)")
            print("removed rule \(id)")
        }
    }
}
