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
            dashboard shell (/) and this document needs the admin token: `Authorization: Bearer TOKEN`,
            the dashboard's `rampart_admin` cookie, or `?token=TOKEN`. Calls without it get 401.
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
                timeline: {type: array, items: {type: string}}
        security:
          - bearer: []
        paths:
          /:
            get:
              summary: The dashboard page; with ?token= it sets the admin cookie and redirects to /.
              security: []
              responses:
                '200': {description: HTML page}
                '303': {description: Token kept in an HttpOnly SameSite=Strict cookie}
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
                        ttl_seconds: {type: integer, default: 3600}
                        reason: {type: string, default: manual}
              responses:
                '201': {description: Banned}
                '400': {description: Not an address}
                '401': {description: No or wrong token}
          /api/bans/{address}:
            delete:
              summary: Lift a ban.
              parameters:
                - {name: address, in: path, required: true, schema: {type: string}}
              responses:
                '204': {description: Lifted}
                '404': {description: Not banned}
                '401': {description: No or wrong token}
          /api/top:
            get:
              summary: The last second's heaviest sources, subnets, paths, user agents and JA4 TLS fingerprints per site.
              parameters:
                - {name: n, in: query, schema: {type: integer, default: 10, maximum: 100}}
              responses:
                '200': {description: Top lists per site}
                '401': {description: No or wrong token}
          /api/incidents:
            get:
              summary: Incidents, newest first.
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
          /api/reload:
            post:
              summary: Reload the config file (as SIGHUP does); a bad file is refused and the old config kept.
              responses:
                '200': {description: Reloaded}
                '409': {description: The gateway runs from flags}
                '422': {description: The file was refused (the message names file, line and key)}
                '401': {description: No or wrong token}
          /api/stats:
            get:
              summary: One frame of what /api/stream sends.
              responses:
                '200': {description: Sites, top lists, ban count and recent incidents}
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
