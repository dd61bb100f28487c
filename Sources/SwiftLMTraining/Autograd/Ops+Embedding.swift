import SwiftLMCore

extension Ops {
    /// `[vocabSize, hidden]`, `[tokens]` -> `[tokens, hidden]`: rows of the embedding table.
    ///
    /// The backward scatters each row's gradient back into the row of its token; repeated
    /// tokens sum.
    public static func embedding(_ table: Variable, tokens: [Int]) -> Variable {
        precondition(table.value.rank == 2, "embedding: table must be [vocabSize, hidden]")
        let vocabSize = table.shape[0]
        let hidden = table.shape[1]
        precondition(tokens.allSatisfy { $0 >= 0 && $0 < vocabSize }, "embedding: token id range")
        let result = Tensor(uninitialized: [tokens.count, hidden])
        // A frozen quantized table (QLoRA's base) is dequantized row by row; rows of F32 are
        // copied, which is the same call.
        for (row, token) in tokens.enumerated() {
            Quantization.dequantizeRow(
                table.value.type, table.value.row(token), result.floats + row * hidden,
                count: hidden)
        }

        return Variable(result, inputs: [table]) { output in
            let upstream = output.gradient!.floats
            let target = table.gradientStorage()
            for (row, token) in tokens.enumerated() {
                let from = upstream + row * hidden
                let to = target + token * hidden
                for index in 0..<hidden { to[index] += from[index] }
            }
        }
    }
}
