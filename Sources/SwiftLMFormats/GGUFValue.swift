/// The type tags of GGUF metadata values, numbered as in the GGUF specification
/// (`gguf_metadata_value_type` in ggml's `docs/gguf.md`).
public enum GGUFValueType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case uint8 = 0
    case int8 = 1
    case uint16 = 2
    case int16 = 3
    case uint32 = 4
    case int32 = 5
    case float32 = 6
    case bool = 7
    case string = 8
    case array = 9
    case uint64 = 10
    case int64 = 11
    case float64 = 12

    /// Bytes one value of this type takes in a file, or nil for strings and arrays, whose size
    /// depends on their contents.
    public var fixedByteCount: Int? {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string, .array: return nil
        }
    }

    /// The spelling of the specification, e.g. `uint32`.
    public var description: String {
        switch self {
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .uint16: return "uint16"
        case .int16: return "int16"
        case .uint32: return "uint32"
        case .int32: return "int32"
        case .float32: return "float32"
        case .bool: return "bool"
        case .string: return "string"
        case .array: return "array"
        case .uint64: return "uint64"
        case .int64: return "int64"
        case .float64: return "float64"
        }
    }
}

/// One GGUF metadata value.
///
/// Use the typed accessors (`int`, `double`, `string`, `stringArray`, ...) to read a value
/// without caring which of the equivalent file types a writer chose.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case uint64(UInt64)
    case int64(Int64)
    case float32(Float)
    case float64(Double)
    case bool(Bool)
    case string(String)
    case array(GGUFArray)

    /// The type tag this value is written with.
    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .uint64: return .uint64
        case .int64: return .int64
        case .float32: return .float32
        case .float64: return .float64
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        }
    }
}

/// The elements of a GGUF array, stored as one typed Swift array.
///
/// A GGUF array has a single element type, so a vocabulary of 49152 tokens is one `[String]`
/// rather than 49152 boxed values. Arrays of arrays are `.arrays`; each inner array carries its
/// own element type, as in the file format.
public enum GGUFArray: Sendable, Equatable {
    case uint8([UInt8])
    case int8([Int8])
    case uint16([UInt16])
    case int16([Int16])
    case uint32([UInt32])
    case int32([Int32])
    case uint64([UInt64])
    case int64([Int64])
    case float32([Float])
    case float64([Double])
    case bool([Bool])
    case string([String])
    case arrays([GGUFArray])

    /// The type tag of the elements.
    public var elementType: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .uint64: return .uint64
        case .int64: return .int64
        case .float32: return .float32
        case .float64: return .float64
        case .bool: return .bool
        case .string: return .string
        case .arrays: return .array
        }
    }

    /// The number of elements.
    public var count: Int {
        switch self {
        case .uint8(let elements): return elements.count
        case .int8(let elements): return elements.count
        case .uint16(let elements): return elements.count
        case .int16(let elements): return elements.count
        case .uint32(let elements): return elements.count
        case .int32(let elements): return elements.count
        case .uint64(let elements): return elements.count
        case .int64(let elements): return elements.count
        case .float32(let elements): return elements.count
        case .float64(let elements): return elements.count
        case .bool(let elements): return elements.count
        case .string(let elements): return elements.count
        case .arrays(let elements): return elements.count
        }
    }

    /// The elements as integers, or nil when the elements are not integers or one of them
    /// does not fit in `Int`.
    public var integers: [Int]? {
        switch self {
        case .uint8(let elements): return elements.map(Int.init)
        case .int8(let elements): return elements.map(Int.init)
        case .uint16(let elements): return elements.map(Int.init)
        case .int16(let elements): return elements.map(Int.init)
        case .uint32(let elements): return elements.map(Int.init)
        case .int32(let elements): return elements.map(Int.init)
        case .int64(let elements): return elements.map(Int.init)
        case .uint64(let elements):
            // A uint64 above Int.max has no Int; say so rather than wrap or trap.
            guard elements.allSatisfy({ $0 <= UInt64(Int.max) }) else { return nil }
            return elements.map(Int.init)
        default: return nil
        }
    }
}

extension GGUFValue {
    /// The value as an `Int`, for any integer type, or nil when it is not an integer or does
    /// not fit (a uint64 above `Int.max`).
    public var int: Int? {
        switch self {
        case .uint8(let value): return Int(value)
        case .int8(let value): return Int(value)
        case .uint16(let value): return Int(value)
        case .int16(let value): return Int(value)
        case .uint32(let value): return Int(value)
        case .int32(let value): return Int(value)
        case .int64(let value): return Int(value)
        case .uint64(let value): return Int(exactly: value)
        default: return nil
        }
    }

    /// The value as a `Double`, for float32, float64 and any integer type; nil otherwise.
    public var double: Double? {
        switch self {
        case .float32(let value): return Double(value)
        case .float64(let value): return value
        case .uint64(let value): return Double(value)
        default: return int.map(Double.init)
        }
    }

    /// The value as a `Float`, for float32, float64 and any integer type; nil otherwise.
    /// A float64 is rounded to the nearest `Float`.
    public var float: Float? {
        if case .float32(let value) = self { return value }
        return double.map(Float.init)
    }

    /// The value of a bool; nil for every other type.
    public var bool: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    /// The value of a string; nil for every other type.
    public var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The array, or nil when the value is not an array.
    public var array: GGUFArray? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// The elements of an array of strings; nil for every other value.
    public var stringArray: [String]? {
        if case .array(.string(let elements)) = self { return elements }
        return nil
    }

    /// The elements of an array of float32 or float64 as `Float`; nil for every other value.
    public var floatArray: [Float]? {
        switch self {
        case .array(.float32(let elements)): return elements
        case .array(.float64(let elements)): return elements.map(Float.init)
        default: return nil
        }
    }

    /// The elements of an array of any integer type as `Int`; nil for every other value and
    /// when an element does not fit in `Int`.
    public var intArray: [Int]? {
        array?.integers
    }
}
