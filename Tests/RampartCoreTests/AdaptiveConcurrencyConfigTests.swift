import Testing

@testable import RampartCore

@Suite struct AdaptiveConcurrencyConfigTests {
    @Test func theLearnedLimitIsOnByDefaultAndItsKeysAreCheckedWithLineAndKey() throws {
        let good = """
            listeners: [{address: 127.0.0.1:8080}]
            sites:
              - name: www
                hosts: [example.org]
                origins:
                  - 10.0.0.6:80
                  - { address: 10.0.0.7:80, max_connections: 8, min_concurrency: 4 }
                  - { address: 10.0.0.8:80, adaptive_concurrency: false }
            """
        let origins = try ConfigLoader.load(yaml: good, file: "good.yaml").sites[0].origins
        #expect(origins[0].adaptiveConcurrency && origins[0].minConcurrency == 2 && origins[0].maxConnections == 128)
        #expect(origins[1].adaptiveConcurrency && origins[1].minConcurrency == 4 && origins[1].maxConnections == 8)
        #expect(!origins[2].adaptiveConcurrency)

        let bad = """
            listeners: [{address: 127.0.0.1:8080}]
            sites:
              - name: www
                hosts: [example.org]
                origins:
                  - { address: 10.0.0.7:80, max_connections: 8, min_concurrency: 9 }
                  - { address: 10.0.0.8:80, adaptive_concurrency: sometimes, min_concurrency: 0 }
            """
        do {
            _ = try ConfigLoader.load(yaml: bad, file: "bad.yaml")
            Issue.record("a bad config was accepted")
        } catch {
            let text = error.description
            #expect(text.contains("bad.yaml:6:") && text.contains("sites[0].origins[0].min_concurrency") && text.contains("above max_connections"), "\(text)")
            #expect(text.contains("bad.yaml:7:") && text.contains("sites[0].origins[1].adaptive_concurrency"), "\(text)")
            #expect(text.contains("sites[0].origins[1].min_concurrency"), "\(text)")
        }
    }
}
