import NIOCore
import NIOHTTP1
import RampartCore

/// What the connection tells every request on it.
struct ConnectionFacts {
    /// The TCP peer, or the PROXY protocol source.
    var peer: IPAddress {
        didSet { peerText = peer.description }
    }
    /// The peer as text, made once per connection (an IPv4 address fits an inline string).
    private(set) var peerText: String
    /// "http" or "https".
    let scheme: String
    /// The JA4 fingerprint of the connection's TLS ClientHello (nil on plain HTTP).
    let fingerprint: String?
    /// The listener's limits (connection-phase timeouts, request caps).
    let limits: Limits

    init(peer: IPAddress, scheme: String, fingerprint: String?, limits: Limits) {
        self.peer = peer
        self.peerText = peer.description
        self.scheme = scheme
        self.fingerprint = fingerprint
        self.limits = limits
    }
}

/// One request on its way through the request phases (``RequestPipeline``): what it is, who sent
/// it, the site runtime it was routed to and what each phase decided about it. A value kept by the
/// connection's handler for the life of the request, so it costs no allocation of its own.
///
/// It holds a reference to its site's runtime, never an index: a reload that removes or reorders
/// sites does not change the policy a request in flight runs under.
struct RequestContext {
    /// The request id (sent to the origin as `X-Request-Id` and shown on gateway pages).
    let id: String
    /// The request head as the client sent it.
    let head: HTTPRequestHead
    /// When the head arrived.
    let start: NIODeadline
    let connection: ConnectionFacts
    /// The client: the peer, or the address a trusted proxy forwarded for (``ClientAddressPhase``).
    var client: IPAddress
    /// The connection may serve another request after this one.
    var keepAlive: Bool
    /// The client sends a body (or its framing is unknown, so nothing after it can be read).
    var hasBody = false

    /// Framing (``FramingPhase``): normalised target and host, and the one body framing. Until
    /// then, the target as sent (for the access log of a request refused before).
    var accepted: RequestChecks.Accepted
    /// Routing (``RoutingPhase``): the site's runtime on this loop.
    var site: SiteRuntime?
    /// Access rules: what the site's fingerprint rules, and its country and network rules, say
    /// about this client.
    var fingerprintVerdict = FingerprintRules.Verdict.none
    var geoVerdict = GeoVerdict.pass
    /// Identity for rate limits and queues: a presented API key, a session credential's key.
    var apiKey: PresentedAPIKey?
    var credential: IPAddress?
    /// The credential is a bearer token (not a session cookie).
    var bearer = false
    /// A member: a session cookie the origin issued, bound by the gateway's companion cookie
    /// (``SessionBinding``). Limited per session, never challenged, first in queues.
    var member: SessionBinding.Member?
    /// The companion cookie's `Set-Cookie` for this response (a login, a refresh or a logout).
    var sessionCompanion: String?
    /// A login or a request with an unknown API key: the origin's answer says whether the
    /// credentials were good (``CredentialPhase``).
    var credentialAttempt = false
    /// Challenge: the request went through the stage (a mode change while it waits need not
    /// decide it again), showed a valid clearance (goes first in queues), and the `Set-Cookie`
    /// (a clearance handed out) its response carries.
    var challengeChecked = false
    var cleared = false
    var setCookie: String?
    /// What the site's behaviour score says about the client (``BehaviourScore``), for GETs the
    /// challenge stage saw: a client whose own pages show a person goes first in origin queues.
    var behaviour: BehaviourScore.Standing?
    /// Forward head (``ForwardHeadPhase``): the one request the origin parses.
    var forwardHead: HTTPRequestHead?
    /// The protocol a WebSocket upgrade asks for.
    var upgrade: String?
    /// Cache lookup: the key this request may be answered from, and the key it fetches for
    /// the cache (others wait for that fetch).
    var cacheKey: String?
    var fillKey: String?

    init(id: String, head: HTTPRequestHead, start: NIODeadline, connection: ConnectionFacts, keepAlive: Bool) {
        self.id = id
        self.head = head
        self.start = start
        self.connection = connection
        self.client = connection.peer
        self.keepAlive = keepAlive
        self.accepted = RequestChecks.Accepted(host: nil, target: head.uri)
    }

    /// The request's site runtime. Only after routing. Its settings are read in place
    /// (`routed.config.limits`): binding `routed.config` to a local would copy the whole
    /// `SiteConfig`, retaining every list in it, on every request.
    var routed: SiteRuntime { site! }
}

/// What a phase decided: go on, answer here, close, or hold the request for a while.
enum PhaseResult {
    /// The next phase runs.
    case next
    /// The gateway answers the request itself.
    case respond(LocalAnswer)
    /// The connection is closed without an answer (counted and logged for `reason`).
    case close(RejectReason, detail: String?)
    /// The answer is held back (tarpit) or the request waits for another one's fetch.
    case hold(Hold)
}

/// An answer the gateway writes itself.
enum LocalAnswer {
    /// A refusal: the reason's gateway page, counted and logged.
    case refusal(RejectReason, retryAfter: Int? = nil, detail: String? = nil)
    /// A page or redirect the gateway makes (challenges, HTTPS redirect, clearance handed out).
    case page(status: HTTPResponseStatus, body: String, headers: [(String, String)], decision: String)
    /// A cached copy of an origin's response.
    case cached(CachedResponse, stale: Bool)
}

/// Why a request is held.
enum Hold {
    /// Rate-limited with the tarpit action: the 429 goes out after `delay`.
    case tarpit(delay: TimeAmount, rule: String, retryAfter: Int)
    /// Another request is fetching this cache key: wait for it.
    case coalesce(key: String)
}
