// A binary min-heap, for the merge loops of both tokenizers.

/// A priority queue that pops its smallest element first.
///
/// - Complexity: O(log n) per push and pop.
struct PriorityQueue<Element: Comparable> {
    private var heap: [Element] = []

    var isEmpty: Bool { heap.isEmpty }

    mutating func removeAll() {
        heap.removeAll(keepingCapacity: true)
    }

    mutating func push(_ element: Element) {
        heap.append(element)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child] < heap[parent] else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func popMin() -> Element? {
        guard let last = heap.popLast() else { return nil }
        guard !heap.isEmpty else { return last }

        let smallest = heap[0]
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var target = parent
            if left < heap.count && heap[left] < heap[target] {
                target = left
            }
            if right < heap.count && heap[right] < heap[target] {
                target = right
            }
            if target == parent {
                break
            }
            heap.swapAt(parent, target)
            parent = target
        }
        return smallest
    }
}
