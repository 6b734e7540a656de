import Testing

@testable import API

@Suite("Queue event feeds")
struct QueueFeedsTests {
    @Test("a feed gets its channel's changes in order, counts what a slow reader lost, and stops being fed once finished")
    func feed() async {
        let feeds = QueueFeeds()
        let feed = feeds.follow("t:{a}:events")
        feeds.publish("t:{b}:events", Array("succeeded x.b".utf8))
        for index in 0..<(QueueFeeds.buffered + 5) { feeds.publish("t:{a}:events", Array("succeeded \(index).a \(index)b.a".utf8)) }
        feeds.publish("t:{a}:events", Array("progress".utf8))  // no id: not a change
        #expect(feed.takeDropped() == 5)
        #expect(feed.takeDropped() == 0)
        feed.finish()
        var items: [QueueFeeds.Item] = []
        for await item in feed.items { items.append(item) }
        #expect(items.count == QueueFeeds.buffered)
        #expect(items.first == .change(kind: "succeeded", ids: ["5.a", "5b.a"]))
        #expect(items.last == .change(kind: "succeeded", ids: ["\(QueueFeeds.buffered + 4).a", "\(QueueFeeds.buffered + 4)b.a"]))
        feeds.pushed(true)  // no feed left to tell
    }
}
