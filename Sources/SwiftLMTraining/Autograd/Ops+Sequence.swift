import SwiftLMCore

extension Ops {
    /// `[count, width]`, `[batchSize * seqLen, width] -> [batchSize * (count + seqLen), width]`:
    /// the same `prefix` rows put in front of every sequence of `x`.
    ///
    /// Prompt tuning prepends its virtual token embeddings this way, and prefix tuning its
    /// learned keys and values. The backward sums each prefix row's gradient over the batch.
    public static func prependToSequences(
        _ prefix: Variable, _ x: Variable, batchSize: Int
    ) -> Variable {
        precondition(prefix.value.rank == 2 && x.value.rank == 2, "prepend: 2-D operands")
        precondition(prefix.shape[1] == x.shape[1], "prepend: \(prefix.shape) before \(x.shape)")
        precondition(
            batchSize > 0 && x.shape[0] % batchSize == 0,
            "prepend: \(x.shape[0]) rows are not \(batchSize) sequences")
        let width = x.shape[1]
        let count = prefix.shape[0]
        let seqLen = x.shape[0] / batchSize
        let length = count + seqLen
        let result = Tensor(uninitialized: [batchSize * length, width])
        for sequence in 0..<batchSize {
            let out = result.floats + sequence * length * width
            out.update(from: prefix.value.floats, count: count * width)
            (out + count * width).update(
                from: x.value.floats + sequence * seqLen * width, count: seqLen * width)
        }

        return Variable(result, inputs: [prefix, x]) { output in
            let upstream = output.gradient!.floats
            if prefix.requiresGradient {
                let target = prefix.gradientStorage()
                for sequence in 0..<batchSize {
                    let from = upstream + sequence * length * width
                    for index in 0..<(count * width) { target[index] += from[index] }
                }
            }
            if x.requiresGradient {
                let target = x.gradientStorage()
                for sequence in 0..<batchSize {
                    let from = upstream + (sequence * length + count) * width
                    let to = target + sequence * seqLen * width
                    for index in 0..<(seqLen * width) { to[index] += from[index] }
                }
            }
        }
    }

    /// `[batchSize * (count + seqLen), width] -> [batchSize * seqLen, width]`: every sequence
    /// without its first `count` rows, the inverse of `prependToSequences` (the outputs at
    /// virtual positions are not predictions of any token).
    public static func dropSequencePrefix(
        _ x: Variable, count: Int, batchSize: Int
    ) -> Variable {
        precondition(x.value.rank == 2, "drop prefix: 2-D input")
        precondition(
            batchSize > 0 && x.shape[0] % batchSize == 0 && x.shape[0] / batchSize > count,
            "drop prefix: \(x.shape[0]) rows are not \(batchSize) sequences longer than \(count)")
        let width = x.shape[1]
        let length = x.shape[0] / batchSize
        let seqLen = length - count
        let result = Tensor(uninitialized: [batchSize * seqLen, width])
        for sequence in 0..<batchSize {
            (result.floats + sequence * seqLen * width).update(
                from: x.value.floats + (sequence * length + count) * width,
                count: seqLen * width)
        }

        return Variable(result, inputs: [x]) { output in
            let upstream = output.gradient!.floats
            let target = x.gradientStorage()
            for sequence in 0..<batchSize {
                let from = upstream + sequence * seqLen * width
                let to = target + (sequence * length + count) * width
                for index in 0..<(seqLen * width) { to[index] += from[index] }
            }
        }
    }

    /// `[rows, width] -> [rows, columns.count]`: a range of columns (one layer's keys out of
    /// prefix tuning's `[P, layers * 2 * kvDim]` table).
    public static func columns(_ x: Variable, _ columns: Range<Int>) -> Variable {
        precondition(x.value.rank == 2, "columns: 2-D input")
        precondition(
            columns.lowerBound >= 0 && columns.upperBound <= x.shape[1] && !columns.isEmpty,
            "columns: \(columns) of \(x.shape[1])")
        let rows = x.shape[0]
        let width = x.shape[1]
        let count = columns.count
        let result = Tensor(uninitialized: [rows, count])
        for row in 0..<rows {
            (result.floats + row * count).update(
                from: x.value.floats + row * width + columns.lowerBound, count: count)
        }

        return Variable(result, inputs: [x]) { output in
            let upstream = output.gradient!.floats
            let target = x.gradientStorage()
            for row in 0..<rows {
                let to = target + row * width + columns.lowerBound
                let from = upstream + row * count
                for index in 0..<count { to[index] += from[index] }
            }
        }
    }
}
