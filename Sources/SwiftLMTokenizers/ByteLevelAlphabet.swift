// GPT-2's byte <-> character table.
//
// Byte-level BPE vocabularies spell every byte as a printable character so that merges never
// see spaces or control bytes: printable Latin-1 bytes ('!'...'~', '¡'...'¬', '®'...'ÿ') stand
// for themselves and the other 68 bytes take U+0100, U+0101 ... in byte order, so a space is
// 'Ġ' (U+0120) and a newline 'Ċ' (U+010A). Same table as OpenAI's `bytes_to_unicode` and
// llama.cpp's unicode_byte_to_utf8_map (src/unicode.cpp).

/// The GPT-2 byte <-> character table.
enum ByteLevelAlphabet {
    /// The code point that stands for each byte, indexed by byte.
    static let characterForByte: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 0x100
        for byte in 0..<256 {
            if standsForItself(UInt8(byte)) {
                table[byte] = UInt32(byte)
            } else {
                table[byte] = next
                next += 1
            }
        }
        return table
    }()

    /// The UTF-8 bytes of the character that stands for each byte, indexed by byte.
    static let encodedByte: [[UInt8]] = characterForByte.map { Array(utf8(of: $0)) }

    /// The byte a character stands for, or `nil` when it is not in the table.
    static func byte(for character: UInt32) -> UInt8? {
        if character < 0x100 {
            let byte = UInt8(character)
            return standsForItself(byte) ? byte : nil
        }
        return byteForShiftedCharacter[character]
    }

    private static let byteForShiftedCharacter: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for byte in 0..<256 where characterForByte[byte] >= 0x100 {
            map[characterForByte[byte]] = UInt8(byte)
        }
        return map
    }()

    private static func standsForItself(_ byte: UInt8) -> Bool {
        (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || byte >= 0xAE
    }

    private static func utf8(of codepoint: UInt32) -> String.UTF8View {
        String(Character(Unicode.Scalar(codepoint)!)).utf8
    }
}
