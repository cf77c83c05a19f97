import NIOCore
import RampartCore

/// The connection's deadlines (header, body, idle, send; ``ConnectionTimeouts``) on one lazy timer.
extension ClientHandler {
    func armTimer(now: NIODeadline) {
        guard let context, !state.isClosed else { return }
        switch timeouts.check(now: now) {
        case .expired(let reason):
            expired(reason)
        case .ok(let next):
            guard let next else { return }
            if let at = timerAt, at <= next { return }
            timer?.cancel()
            timerAt = next
            timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: next) {
                self.timer = nil
                self.timerAt = nil
                self.armTimer(now: self.loop.eventLoop.now)
            }
        }
    }

    func expired(_ reason: RejectReason) {
        switch reason {
        case .bodyTimeout, .bodyTooSlow:
            request.keepAlive = false
            releaseOrigin(reusable: false)
            if responseStarted {
                loop.reject(reason, client: request.client)
                closeNow()
            } else {
                respondLocally(reason)
            }
        default:
            // Header, idle and send timeouts: a client that is not talking or not reading gets no page.
            loop.reject(reason, client: request.client)
            closeNow()
        }
    }

    func cancelTimer() {
        timer?.cancel()
        timer = nil
        timerAt = nil
    }

    /// Connection-phase keys from the listener, request-phase keys from the site.
    static func merged(listener: Limits, site: Limits) -> Limits {
        var l = listener
        l.bodyTimeout = site.bodyTimeout
        l.bodyMinRate = site.bodyMinRate
        l.maxBodyBytes = site.maxBodyBytes
        l.maxURIBytes = site.maxURIBytes
        l.originConnectTimeout = site.originConnectTimeout
        l.originResponseTimeout = site.originResponseTimeout
        return l
    }
}
