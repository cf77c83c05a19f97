import Logging
import RampartCore
import RampartDataPlane
import ServiceLifecycle
import UnixSignals

/// The operator's signals other than shutdown (SIGTERM and SIGINT belong to the `ServiceGroup`):
/// SIGHUP reloads the configuration, SIGUSR1 reopens the access log.
///
/// The signal sequence is made by `serve` before anything else starts, so that a SIGHUP or SIGUSR1
/// sent right after start is handled instead of ending the process (their default action).
struct ControlSignalService: Service, CustomStringConvertible {
    let signals: UnixSignalsSequence
    let gateway: Gateway
    /// Where a reload reads its configuration from.
    let source: ConfigSource
    /// The configuration of a one-site gateway (flags): applied again on SIGHUP, which re-reads
    /// its certificate files (renewals).
    let flagsConfig: GatewayConfig
    let logger: Logger

    var description: String { "control-signals" }

    func run() async throws {
        for await signal in signals.cancelOnGracefulShutdown() {
            switch signal {
            case .sigusr1:
                gateway.reopenLogs()
                logger.notice("access log reopened")
            case .sighup:
                await reload()
            default:
                continue
            }
        }
    }

    private func reload() async {
        do {
            let newConfig: GatewayConfig
            if case .file(let path) = source { newConfig = try ConfigLoader.load(path: path) } else { newConfig = flagsConfig }
            try await gateway.reload(newConfig)
        } catch let error as ConfigError {
            logger.error("reload refused; the previous configuration stays in force", metadata: ["errors": "\(error.description)"])
        } catch {
            logger.error("reload refused; the previous configuration stays in force", metadata: ["error": "\(error)"])
        }
    }
}
