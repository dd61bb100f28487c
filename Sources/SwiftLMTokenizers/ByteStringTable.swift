// An interning table of byte strings.
//
// Token texts are looked up by their bytes, never as Swift `String`s: `String` equality is
// Unicode canonical equivalence, so "é" and "e\u{301}" would be the same key, while llama.cpp
// compares bytes (`std::string`) and keeps them apart. Keeping every string in one buffer also
// lets the hot loops look up a slice of their input without allocating a key.

/// Byte strings numbered in the order they were first inserted, with lookup by content.
struct ByteStringTable: Sendable {
    /// Every string's bytes, one after another.
    private var storage: [UInt8] = []
    /// Where string `i` starts in `storage`; string `i` ends where string `i + 1` starts.
    private var starts: [Int] = [0]
    /// Open-addressing hash slots holding string numbers, or -1 when empty.
    private var slots: [Int32]

    /// How many distinct strings the table holds.
    var count: Int { starts.count - 1 }

    init(minimumCapacity: Int = 16) {
        var slotCount = 16
        while slotCount < minimumCapacity * 2 {
            slotCount *= 2
        }
        slots = [Int32](repeating: -1, count: slotCount)
        storage.reserveCapacity(minimumCapacity * 4)
        starts.reserveCapacity(minimumCapacity + 1)
    }

    /// The bytes of string number `index`.
    subscript(index: Int) -> ArraySlice<UInt8> {
        storage[starts[index]..<starts[index + 1]]
    }

    /// The number of the string equal to `bytes`, if the table has it.
    func index(of bytes: ArraySlice<UInt8>) -> Int? {
        bytes.withUnsafeBufferPointer { index(of: $0) }
    }

    /// The number of the string equal to `bytes`, if the table has it.
    func index(of bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: Self.hash(bytes)) & mask
        while true {
            let candidate = Int(slots[slot])
            if candidate < 0 {
                return nil
            }
            if matches(candidate, bytes) {
                return candidate
            }
            slot = (slot + 1) & mask
        }
    }

    /// Adds `bytes` unless the table has it already.
    ///
    /// - Returns: the string's number, and whether it was new.
    @discardableResult
    mutating func insert(_ bytes: ArraySlice<UInt8>) -> (index: Int, inserted: Bool) {
        if let existing = index(of: bytes) {
            return (existing, false)
        }
        if (count + 1) * 2 > slots.count {
            grow()
        }

        let index = count
        storage.append(contentsOf: bytes)
        starts.append(storage.count)
        placeInSlot(index)
        return (index, true)
    }

    private func matches(_ index: Int, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let start = starts[index]
        guard starts[index + 1] - start == bytes.count else { return false }

        for offset in 0..<bytes.count where storage[start + offset] != bytes[offset] {
            return false
        }
        return true
    }

    private mutating func grow() {
        slots = [Int32](repeating: -1, count: slots.count * 2)
        for index in 0..<count {
            placeInSlot(index)
        }
    }

    private mutating func placeInSlot(_ index: Int) {
        let mask = slots.count - 1
        let hash = storage.withUnsafeBufferPointer { buffer in
            Self.hash(UnsafeBufferPointer(rebasing: buffer[starts[index]..<starts[index + 1]]))
        }
        var slot = Int(truncatingIfNeeded: hash) & mask
        while slots[slot] >= 0 {
            slot = (slot + 1) & mask
        }
        slots[slot] = Int32(index)
    }

    /// 64-bit FNV-1a, then a final mix so that the low bits used as the slot are well spread.
    private static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        hash ^= hash >> 29
        hash = hash &* 0xbf58_476d_1ce4_e5b9
        return hash ^ (hash >> 32)
    }
}
