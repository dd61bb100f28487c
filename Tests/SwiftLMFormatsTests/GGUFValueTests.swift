import SwiftLMFormats
import Testing

@Suite("GGUF values")
struct GGUFValueTests {
    @Test("int reads every integer type and refuses what does not fit")
    func intAccessor() {
        #expect(GGUFValue.uint8(255).int == 255)
        #expect(GGUFValue.int8(-128).int == -128)
        #expect(GGUFValue.uint16(65535).int == 65535)
        #expect(GGUFValue.int16(-2).int == -2)
        #expect(GGUFValue.uint32(.max).int == Int(UInt32.max))
        #expect(GGUFValue.int32(.min).int == Int(Int32.min))
        #expect(GGUFValue.int64(.min).int == Int.min)
        #expect(GGUFValue.uint64(UInt64(Int.max)).int == Int.max)
        #expect(GGUFValue.uint64(UInt64(Int.max) + 1).int == nil)
        #expect(GGUFValue.float32(1).int == nil)
        #expect(GGUFValue.bool(true).int == nil)
        #expect(GGUFValue.string("1").int == nil)
    }

    @Test("double and float read floats and integers")
    func floatAccessors() {
        #expect(GGUFValue.float32(1.5).double == 1.5)
        #expect(GGUFValue.float64(0.1).double == 0.1)
        #expect(GGUFValue.float64(0.1).float == Float(0.1))
        #expect(GGUFValue.uint32(10000).float == 10000)
        #expect(GGUFValue.uint64(.max).double == Double(UInt64.max))
        #expect(GGUFValue.string("1.5").double == nil)
        #expect(GGUFValue.bool(false).float == nil)
    }

    @Test("bool and string read only their own type")
    func boolAndString() {
        #expect(GGUFValue.bool(true).bool == true)
        #expect(GGUFValue.uint8(1).bool == nil)
        #expect(GGUFValue.string("llama").string == "llama")
        #expect(GGUFValue.array(.string(["llama"])).string == nil)
    }

    @Test("array accessors convert element types and refuse the rest")
    func arrayAccessors() {
        #expect(GGUFValue.array(.string(["a", "b"])).stringArray == ["a", "b"])
        #expect(GGUFValue.array(.int32([1])).stringArray == nil)

        #expect(GGUFValue.array(.float32([1, 2])).floatArray == [1, 2])
        #expect(GGUFValue.array(.float64([0.5])).floatArray == [0.5])
        #expect(GGUFValue.array(.int32([1])).floatArray == nil)

        #expect(GGUFValue.array(.int32([-1, 2])).intArray == [-1, 2])
        #expect(GGUFValue.array(.uint8([255])).intArray == [255])
        #expect(GGUFValue.array(.int16([-3])).intArray == [-3])
        #expect(GGUFValue.array(.uint64([1, .max])).intArray == nil)
        #expect(GGUFValue.array(.float32([1])).intArray == nil)
        #expect(GGUFValue.uint32(1).intArray == nil)
    }

    @Test("an array knows its element type and count")
    func arrayShape() {
        let nested = GGUFArray.arrays([.string(["a"]), .bool([])])
        #expect(nested.elementType == .array)
        #expect(nested.count == 2)
        #expect(GGUFValue.array(nested).type == .array)
        #expect(GGUFArray.float64([]).elementType == .float64)
    }

    @Test("value types are spelled as in the specification")
    func typeNames() {
        #expect(
            GGUFValueType.allCases.map(\.description) == [
                "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string",
                "array", "uint64", "int64", "float64",
            ])
        #expect(GGUFValueType.allCases.map(\.rawValue) == Array(0...12))
    }
}
