import Testing
@testable import RampartFleet

@Suite struct EventCursorTests {
    @Test func contiguousIdsAdvanceTheFloor() {
        var c = EventCursor(floor: 10)
        #expect(c.isNew(11) && !c.isNew(10))
        c.record([11, 12, 13], now: 0)
        #expect(c.floor == 13)
        #expect(!c.isNew(12))
        #expect(c.awaited == 0)
    }

    @Test func aLateCommitIsAppliedOnceWhenItShowsUp() {
        var c = EventCursor(floor: 0, patience: 5)
        c.record([1, 3], now: 0)
        #expect(c.floor == 1)
        #expect(c.isNew(2) && !c.isNew(3))
        #expect(c.awaited == 1)
        c.record([2], now: 1)
        #expect(c.floor == 3)
        #expect(c.awaited == 0)
    }

    @Test func aHoleIsGivenUpAfterPatience() {
        var c = EventCursor(floor: 0, patience: 5)
        c.record([1, 3], now: 0)
        c.record([], now: 4.9)
        #expect(c.floor == 1)
        c.record([4], now: 5)
        #expect(c.floor == 4)
        #expect(!c.isNew(2))
    }

    @Test func trackingIsBounded() {
        var c = EventCursor(floor: 0, patience: 1000, capacity: 100)
        c.record([1, 500], now: 0)
        #expect(c.floor == 500)
        #expect(c.awaited == 0)
    }

    @Test func resetForgetsEverything() {
        var c = EventCursor(floor: 0)
        c.record([2], now: 0)
        c.reset(to: 50)
        #expect(c.floor == 50 && c.awaited == 0 && !c.isNew(2) && c.isNew(51))
    }
}
