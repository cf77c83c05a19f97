/// The admin API's OpenAPI document (the same text as `docs/admin-openapi.yaml`; a test keeps
/// the two, and the routes, in step).
enum OpenAPIDocument {
    static let text = #"""
        openapi: 3.0.3
        info:
          title: Rampart admin API
          version: 0.4.0
          description: >
            The admin listener of a Rampart gateway (default 127.0.0.1:9090). Every path except the
            dashboard shell (GET /) and this document needs the admin token, as `Authorization: Bearer
            TOKEN` (scripts, the CLI, Prometheus) or as the dashboard's `rampart_admin` cookie; calls
            without it, or with a wrong one, get 401. The token in a query (`?token=`) is accepted on the
            dashboard link `/` only, which checks it, turns it into the cookie and redirects; on any other
            path it counts for nothing. A call that changes state (POST, PUT, DELETE) made with the cookie
            must also come from the dashboard's own page: its `Origin` header (or, when absent, its
            `Referer`) must be this listener's own `http://HOST:PORT` as the request's `Host` names it
            (`Origin: null`, another host, scheme or port are refused), and a body must be
            `Content-Type: application/json`; otherwise the answer is 403 with a JSON error. Calls with the
            bearer header need neither. Refusals are counted in `rampart_admin_unauthorized_total` (401)
            and `rampart_admin_forbidden_total` (403). Every response carries
            `Cross-Origin-Resource-Policy: same-origin`, `X-Frame-Options: DENY`,
            `X-Content-Type-Options: nosniff` and a Content-Security-Policy with `frame-ancestors 'none'`.
        servers:
          - url: http://127.0.0.1:9090
        components:
          securitySchemes:
            bearer:
              type: http
              scheme: bearer
          schemas:
            Site:
              type: object
              properties:
                site: {type: string}
                mode: {type: string, enum: [normal, elevated, under_attack]}
                automatic_mode: {type: string, enum: [normal, elevated, under_attack]}
                override: {type: string, nullable: true}
                tier: {type: string, enum: [cookie, pow]}
                baseline: {type: number}
                requests: {type: integer}
                to_origin: {type: integer}
                cache_served: {type: integer}
                challenged: {type: integer}
                cleared: {type: integer}
                limited: {type: integer}
                distinct_sources: {type: integer}
                queue_peak: {type: integer}
                origin_latency_ms: {type: number}
                origin_limit: {type: integer, description: "requests the origins may serve at once, as learned (adaptive concurrency)"}
            Ban:
              type: object
              properties:
                address: {type: string}
                remaining: {type: integer, description: seconds left}
                reason: {type: string}
                repeats: {type: integer}
            TopEntry:
              type: object
              properties:
                key: {type: string}
                count: {type: integer}
            Incident:
              type: object
              properties:
                id: {type: integer}
                site: {type: string}
                start: {type: integer, description: Unix seconds}
                end: {type: integer, nullable: true}
                peakMode: {type: string}
                peakRequestsPerSecond: {type: integer}
                peakDistinctSources: {type: integer}
                requests: {type: integer}
                toOrigin: {type: integer}
                challenged: {type: integer}
                cleared: {type: integer}
                limited: {type: integer}
                cacheServed: {type: integer}
                topSources: {type: array, items: {$ref: '#/components/schemas/TopEntry'}}
                topSubnets: {type: array, items: {$ref: '#/components/schemas/TopEntry'}}
                topPaths: {type: array, items: {$ref: '#/components/schemas/TopEntry'}}
                topAgents: {type: array, items: {$ref: '#/components/schemas/TopEntry'}}
                topFingerprints: {type: array, items: {$ref: '#/components/schemas/TopEntry'}, description: JA4 TLS fingerprints}
                topCountries: {type: array, items: {$ref: '#/components/schemas/TopEntry'}, description: Countries of the sources (ISO codes) when geolocation is configured}
                topNetworks: {type: array, items: {$ref: '#/components/schemas/TopEntry'}, description: Networks of the sources (AS numbers) when geolocation is configured}
                timeline: {type: array, items: {type: string}}
                shed: {type: integer, description: refused because the origin queue was full (absent in incidents recorded before reports)}
                clearanceLimited: {type: integer}
                originErrors: {type: integer}
                bansIssued: {type: integer, description: bans issued while the incident was open}
                peak:
                  type: object
                  description: the busiest second and the origin's mean latency and queue in it
                  properties:
                    time: {type: integer}
                    requests: {type: integer}
                    originLatencyMillis: {type: number}
                    originQueue: {type: integer}
                series:
                  type: object
                  description: per-second series (at most 3600 points; adjacent points merged when full, step doubling); only on /api/incidents/{id}
                  properties:
                    step: {type: integer, description: seconds per point}
                    capacity: {type: integer}
                    points: {type: array, items: {type: object}}
                events:
                  type: array
                  description: mode changes, bans and operator actions (at most 500); only on /api/incidents/{id}
                  items:
                    type: object
                    properties:
                      time: {type: integer}
                      kind: {type: string, enum: [mode, operator_mode, ban, operator_ban, operator_unban]}
                      text: {type: string}
                      address: {type: string}
                eventsDropped: {type: integer}
                fleet:
                  type: object
                  description: "In a fleet (docs/fleet.md): the fleet's incident this one belongs to; absent without a fleet"
                  properties:
                    id: {type: integer, description: "the fleet's number, not a node's"}
                    site: {type: string}
                    start: {type: integer}
                    end: {type: integer, nullable: true, description: "once every node's part ended"}
                    nodes:
                      type: array
                      description: each node's own traffic during the incident
                      items:
                        type: object
                        properties:
                          node: {type: string}
                          incident: {type: integer, description: "the node's own incident number"}
                          start: {type: integer}
                          end: {type: integer, nullable: true}
                          peakRequestsPerSecond: {type: integer}
                          requests: {type: integer}
                          refused: {type: integer}
                          challenged: {type: integer}
                          toOrigin: {type: integer}
                          topSources: {type: array, items: {$ref: '#/components/schemas/TopEntry'}}
        security:
          - bearer: []
        paths:
          /:
            get:
              summary: The dashboard page; with ?token= (the printed link, or the page's sign-in form) it checks the token, sets the admin cookie and redirects to /.
              security: []
              parameters:
                - {name: token, in: query, required: false, schema: {type: string}, description: the admin token; accepted on this path only}
              responses:
                '200': {description: HTML page}
                '303': {description: 'The token is right: it is kept in a cookie (rampart_admin=TOKEN; Path=/; HttpOnly; SameSite=Strict) and the browser goes to /'}
                '401': {description: 'The token is wrong: no cookie; the page with its sign-in form'}
          /openapi.yaml:
            get:
              summary: This document.
              security: []
              responses:
                '200': {description: OpenAPI YAML}
          /api/health:
            get:
              summary: Health and version.
              responses:
                '200': {description: '{"status":"ok","version":"..."}'}
                '401': {description: No or wrong token}
          /api/sites:
            get:
              summary: Sites with their mode and last second of traffic.
              responses:
                '200':
                  description: Sites
                  content:
                    application/json:
                      schema: {type: array, items: {$ref: '#/components/schemas/Site'}}
                '401': {description: No or wrong token}
          /api/sites/{site}/mode:
            put:
              summary: Force a site's mode, or return it to automatic with "auto".
              parameters:
                - {name: site, in: path, required: true, schema: {type: string}}
              requestBody:
                required: true
                content:
                  application/json:
                    schema:
                      type: object
                      properties:
                        mode: {type: string, enum: [normal, elevated, under_attack, auto]}
              responses:
                '200': {description: The site after the change}
                '400': {description: Unknown mode}
                '404': {description: No such site}
                '401': {description: No or wrong token}
                '403': {description: 'With the cookie: not from the dashboard''s own origin, or a body that is not application/json'}
          /api/bans:
            get:
              summary: Bans in force, longest remaining first.
              parameters:
                - {name: filter, in: query, schema: {type: string}, description: substring of address or reason}
                - {name: offset, in: query, schema: {type: integer, default: 0}}
                - {name: limit, in: query, schema: {type: integer, default: 100, maximum: 1000}}
              responses:
                '200': {description: '{"total": N, "offset": N, "bans": [Ban]}'}
                '401': {description: No or wrong token}
            post:
              summary: Ban an address (refused at accept from now on).
              requestBody:
                required: true
                content:
                  application/json:
                    schema:
                      type: object
                      required: [address]
                      properties:
                        address: {type: string}
                        ttl: {type: integer, default: 3600, description: "seconds"}
                        ttl_seconds: {type: integer, description: "older name of ttl"}
                        reason: {type: string, default: manual}
              responses:
                '201': {description: Banned}
                '400': {description: Not an address}
                '401': {description: No or wrong token}
                '403': {description: 'With the cookie: not from the dashboard''s own origin, or a body that is not application/json'}
          /api/bans/{address}:
            delete:
              summary: Lift a ban.
              parameters:
                - {name: address, in: path, required: true, schema: {type: string}}
              responses:
                '204': {description: Lifted}
                '404': {description: Not banned}
                '401': {description: No or wrong token}
                '403': {description: 'With the cookie: not from the dashboard''s own origin, or a body that is not application/json'}
          /api/rules:
            get:
              summary: "Operators' runtime rules (allow: priority in origin queues; deny: refused with 403), shared by a fleet."
              responses:
                '200': {description: '[{"id", "action", "cidr", "site", "until", "reason", "by", "decided"}]'}
                '401': {description: No or wrong token}
            post:
              summary: Add a runtime rule (in a fleet, on every node).
              requestBody:
                required: true
                content:
                  application/json:
                    schema:
                      type: object
                      required: [action, block]
                      properties:
                        action: {type: string, enum: [allow, deny]}
                        block: {type: string, description: "CIDR block or one address"}
                        site: {type: string, description: "one site; absent: every site"}
                        ttl: {type: integer, description: "seconds; absent: until removed"}
                        reason: {type: string, default: manual}
              responses:
                '201': {description: The rule, with its id}
                '400': {description: Not a rule}
                '404': {description: No such site}
                '409': {description: Too many runtime rules}
                '401': {description: No or wrong token}
                '403': {description: 'With the cookie: not from the dashboard''s own origin, or a body that is not application/json'}
          /api/rules/{id}:
            delete:
              summary: Remove a runtime rule (in a fleet, on every node).
              parameters:
                - {name: id, in: path, required: true, schema: {type: string}}
              responses:
                '204': {description: Removed}
                '404': {description: No such rule}
                '401': {description: No or wrong token}
                '403': {description: 'With the cookie: not from the dashboard''s own origin, or a body that is not application/json'}
          /api/top:
            get:
              summary: The last second's heaviest sources, subnets, paths, user agents, JA4 TLS fingerprints, countries and networks per site.
              parameters:
                - {name: n, in: query, schema: {type: integer, default: 10, maximum: 100}}
              responses:
                '200': {description: Top lists per site}
                '401': {description: No or wrong token}
          /api/incidents:
            get:
              summary: Incidents, newest first (without their per-second series and events; see /api/incidents/{id}).
              responses:
                '200':
                  description: Incidents
                  content:
                    application/json:
                      schema: {type: array, items: {$ref: '#/components/schemas/Incident'}}
                '401': {description: No or wrong token}
          /api/incidents/{id}:
            get:
              summary: One incident.
              parameters:
                - {name: id, in: path, required: true, schema: {type: integer}}
              responses:
                '200': {description: Incident}
                '404': {description: No such incident}
                '401': {description: No or wrong token}
          /api/incidents/{id}/report:
            get:
              summary: A NIS2 Art. 23 incident report (early warning, notification or final) as HTML, JSON, STIX 2.1 or MISP.
              parameters:
                - {name: id, in: path, required: true, schema: {type: integer}}
                - {name: format, in: query, schema: {type: string, enum: [html, json, stix, misp], default: html}}
                - {name: stage, in: query, schema: {type: string, enum: [early-warning, notification, final], default: notification}}
              responses:
                '200':
                  description: 'The report, with Content-Disposition naming the file (rampart-incident-ID-STAGE.EXT)'
                  content:
                    text/html: {schema: {type: string}}
                    application/json: {schema: {type: object}}
                    application/stix+json;version=2.1: {schema: {type: object}}
                '400': {description: Unknown format or stage}
                '404': {description: No such incident}
                '409': {description: 'The report cannot be made: reports.sources is hashed and the gateway has no pseudonym key, or the stored incident is damaged'}
                '401': {description: No or wrong token}
          /api/reload:
            post:
              summary: Reload the config file (as SIGHUP does); a bad file is refused and the old config kept.
              responses:
                '200': {description: Reloaded}
                '409': {description: The gateway runs from flags}
                '422': {description: The file was refused (the message names file, line and key)}
                '401': {description: No or wrong token}
                '403': {description: 'With the cookie: not from the dashboard''s own origin, or a body that is not application/json'}
          /api/fleet:
            get:
              summary: This node's standing in its fleet (docs/fleet.md) and every node's last heartbeat.
              description: >
                `enabled` is false on a node without `fleet:` in its config (and without `--fleet`). Otherwise:
                `node`, `database` (without any password), `connected`, `sync_lag_seconds` (since the node
                last read the fleet's events), `outbox` and `outbox_dropped` (decisions waiting while the
                database is unreachable), `last_event`, `last_error`, and `nodes[]` with `name`, `address`,
                `started`, `heartbeat` (Unix seconds), `last_event`, `lag_events`, `outbox`,
                `requests_per_second`, and `sites[]`: the node's last second of each site with traffic
                (`site`, `requests`, `to_origin`, `cache_served`, `challenged`, `limited`, per second) and
                the mode its detection raised there and renews (`raised_mode`, `raised_tier`; absent when none).
              responses:
                '200': {description: The fleet status as JSON}
                '401': {description: No or wrong token}
          /api/stats:
            get:
              summary: One frame of what /api/stream sends.
              responses:
                '200': {description: 'Sites, top lists, ban count, recent incidents, and state: the state database''s write health (writable, failedWrites, pendingWrites, droppedWrites, lastError)'}
                '401': {description: No or wrong token}
          /api/stream:
            get:
              summary: Server-sent events, one stats frame a second.
              responses:
                '200': {description: text/event-stream}
                '401': {description: No or wrong token}
          /metrics:
            get:
              summary: Prometheus text exposition.
              responses:
                '200': {description: text/plain; version=0.0.4}
                '401': {description: No or wrong token}
        """#
}
