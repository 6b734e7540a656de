/// A Redis-style sorted set for ``MemoryJobBroker``: members ordered by score, then by member.
///
/// A dictionary holds each member's score (the truth); a binary min-heap orders them. Removing or
/// re-scoring a member leaves its old heap entry behind, skipped when it reaches the top (an entry
/// counts only while its score is the member's current one), and the heap is rebuilt when such
/// leftovers outnumber the members. Insert and pop-min are O(log n), remove O(1) amortised, and the
/// full ordered listing O(n log n).
struct MemorySortedSet<Member: Hashable & Comparable & Sendable>: Sendable {
    struct Entry: Sendable {
        var score: Int64
        var member: Member
    }

    private var scores: [Member: Int64] = [:]
    private var heap: [Entry] = []

    init() {}

    var count: Int { scores.count }

    var isEmpty: Bool { scores.isEmpty }

    func contains(_ member: Member) -> Bool { scores[member] != nil }

    func score(of member: Member) -> Int64? { scores[member] }

    /// Adds `member` with `score`, or changes its score (`ZADD`).
    mutating func insert(_ member: Member, score: Int64) {
        if scores.updateValue(score, forKey: member) == score { return }
        push(Entry(score: score, member: member))
        compactIfNeeded()
    }

    /// Removes `member` (`ZREM`); `false` if it was not there.
    @discardableResult
    mutating func remove(_ member: Member) -> Bool {
        guard scores.removeValue(forKey: member) != nil else { return false }
        compactIfNeeded()
        return true
    }

    /// The entry with the lowest score (mutating only to drop leftover heap entries).
    mutating func peekMin() -> Entry? {
        while let top = heap.first {
            if scores[top.member] == top.score { return top }
            popTop()
        }
        return nil
    }

    /// Removes and returns the entry with the lowest score if that score is at most `maxScore`.
    mutating func popMin(maxScore: Int64 = .max) -> Entry? {
        guard let top = peekMin(), top.score <= maxScore else { return nil }
        popTop()
        scores.removeValue(forKey: top.member)
        return top
    }

    /// Every member, lowest score first (ties by member, as Redis orders them).
    func sortedMembers() -> [Member] {
        scores.sorted { $0.value != $1.value ? $0.value < $1.value : $0.key < $1.key }.map(\.key)
    }

    private static func less(_ a: Entry, _ b: Entry) -> Bool {
        a.score != b.score ? a.score < b.score : a.member < b.member
    }

    private mutating func push(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.less(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func popTop() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        siftDown(from: 0)
    }

    private mutating func siftDown(from start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < heap.count else { return }
            var smallest = left
            let right = left + 1
            if right < heap.count && Self.less(heap[right], heap[left]) { smallest = right }
            guard Self.less(heap[smallest], heap[parent]) else { return }
            heap.swapAt(smallest, parent)
            parent = smallest
        }
    }

    /// Rebuilds the heap from the scores once leftover entries outnumber live ones.
    private mutating func compactIfNeeded() {
        guard heap.count > 2 * scores.count + 64 else { return }
        heap = scores.map { Entry(score: $0.value, member: $0.key) }
        var index = heap.count / 2 - 1
        while index >= 0 {
            siftDown(from: index)
            index -= 1
        }
    }
}
