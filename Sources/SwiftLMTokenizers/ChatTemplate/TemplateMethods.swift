/// Evaluated call arguments, bound to parameters the way Python binds them.
struct TemplateArguments {
    var positional: [TemplateValue] = []
    var keyword: [(name: String, value: TemplateValue)] = []

    /// The arguments in parameter order, defaults filled in. A parameter whose default is nil is
    /// required.
    func bind(
        _ function: String, _ parameters: [(name: String, defaultValue: TemplateValue?)]
    ) throws(ValueFailure) -> [TemplateValue] {
        guard positional.count <= parameters.count else {
            throw .type(
                "\(function)() takes at most \(parameters.count) arguments "
                    + "(\(positional.count) given)")
        }

        var bound: [TemplateValue?] = positional
        bound += Array(repeating: nil, count: parameters.count - positional.count)
        for (name, value) in keyword {
            guard let index = parameters.firstIndex(where: { $0.name == name }) else {
                throw .type("\(function)() got an unexpected keyword argument '\(name)'")
            }
            guard bound[index] == nil else {
                throw .type("\(function)() got multiple values for argument '\(name)'")
            }
            bound[index] = value
        }

        var values: [TemplateValue] = []
        for (index, parameter) in parameters.enumerated() {
            guard let value = bound[index] ?? parameter.defaultValue else {
                throw .type("\(function)() missing required argument '\(parameter.name)'")
            }
            values.append(value)
        }
        return values
    }

    /// Raises Python's `TypeError` if any keyword argument was given.
    func requireNoKeywords(_ function: String) throws(ValueFailure) {
        if let first = keyword.first {
            throw .type("\(function)() got an unexpected keyword argument '\(first.name)'")
        }
    }
}

/// The functions a template can call: Hugging Face's globals and the methods of strings and
/// dictionaries that chat templates use.
enum TemplateMethods {
    /// The names a template finds before any variable of its own.
    static let globals = [
        "raise_exception", "range", "namespace", "dict", "strftime_now", "cycler", "joiner",
        "lipsum",
    ]

    static func call(
        _ callable: TemplateCallable, _ arguments: TemplateArguments
    ) throws(ValueFailure) -> TemplateValue {
        switch callable {
        case .global(let name):
            return try callGlobal(name, arguments)
        case .method(.string(let text), let name):
            return try callStringMethod(text, name, arguments)
        case .method(.dictionary(let dictionary), let name):
            return try callDictionaryMethod(dictionary, name, arguments)
        case .method(let receiver, let name):
            throw .unsupported("method '\(receiver.typeName).\(name)'")
        case .loopCycle(let loop):
            try arguments.requireNoKeywords("cycle")
            guard !arguments.positional.isEmpty else { throw .type("no items for cycling given") }
            return arguments.positional[loop.index0 % arguments.positional.count]
        }
    }

    /// Whether `receiver.name` is a method implemented here.
    static func implements(_ receiver: TemplateValue, _ name: String) -> Bool {
        switch receiver {
        case .string: stringMethods.contains(name)
        case .dictionary: ["get", "items", "keys", "values"].contains(name)
        default: false
        }
    }

    /// Every attribute Python's type has, implemented here or not, so that an unimplemented one
    /// is refused instead of treated as missing.
    static func pythonAttributes(of receiver: TemplateValue) -> Set<String> {
        switch receiver {
        case .string:
            [
                "capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs",
                "find", "format", "format_map", "index", "isalnum", "isalpha", "isascii",
                "isdecimal", "isdigit", "isidentifier", "islower", "isnumeric", "isprintable",
                "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip", "maketrans",
                "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust",
                "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip",
                "swapcase", "title", "translate", "upper", "zfill",
            ]
        case .dictionary:
            [
                "clear", "copy", "fromkeys", "get", "items", "keys", "pop", "popitem",
                "setdefault", "update", "values",
            ]
        case .list:
            [
                "append", "clear", "copy", "count", "extend", "index", "insert", "pop", "remove",
                "reverse", "sort",
            ]
        case .tuple:
            ["count", "index"]
        case .bool, .int:
            [
                "as_integer_ratio", "bit_count", "bit_length", "conjugate", "denominator",
                "from_bytes", "imag", "numerator", "real", "to_bytes", "is_integer",
            ]
        case .float:
            ["as_integer_ratio", "conjugate", "fromhex", "hex", "imag", "is_integer", "real"]
        default:
            []
        }
    }

    private static let stringMethods: Set<String> = [
        "strip", "lstrip", "rstrip", "startswith", "endswith", "split", "upper", "lower",
        "capitalize", "title", "replace", "join",
    ]

    // MARK: Globals

    private static func callGlobal(
        _ name: String, _ arguments: TemplateArguments
    ) throws(ValueFailure) -> TemplateValue {
        switch name {
        case "raise_exception":
            // Hugging Face's helper: `raise TemplateError(message)`.
            let message = try arguments.bind(name, [("message", nil)])[0]
            throw .raised(try message.pythonString())
        case "range":
            return try range(arguments)
        case "namespace":
            let namespace = TemplateNamespace()
            namespace.attributes = try dictionary(arguments, function: name)
            return .namespace(namespace)
        case "dict":
            return .dictionary(try dictionary(arguments, function: name))
        default:
            // `strftime_now` reads the clock; the others build stateful helpers.
            throw .unsupported("function '\(name)'")
        }
    }

    /// `range(stop)`, `range(start, stop)`, `range(start, stop, step)`, with the sandbox's limit.
    private static func range(_ arguments: TemplateArguments) throws(ValueFailure) -> TemplateValue
    {
        try arguments.requireNoKeywords("range")
        var bounds: [Int] = []
        for argument in arguments.positional {
            switch argument {
            case .int(let value): bounds.append(value)
            case .bool(let value): bounds.append(value ? 1 : 0)
            default:
                throw .type("'\(argument.typeName)' object cannot be interpreted as an integer")
            }
        }

        let (start, stop, step): (Int, Int, Int)
        switch bounds.count {
        case 1: (start, stop, step) = (0, bounds[0], 1)
        case 2: (start, stop, step) = (bounds[0], bounds[1], 1)
        case 3: (start, stop, step) = (bounds[0], bounds[1], bounds[2])
        default: throw .type("range expected 1 to 3 arguments, got \(bounds.count)")
        }
        guard step != 0 else { throw .runtime("range() arg 3 must not be zero") }

        // jinja2's sandbox refuses ranges over 100,000 items (`MAX_RANGE`).
        let count =
            step > 0
            ? (stop > start ? (stop - start - 1) / step + 1 : 0)
            : (start > stop ? (start - stop - 1) / -step + 1 : 0)
        guard count <= 100_000 else {
            throw .runtime(
                "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).")
        }
        let items = (0..<count).map { TemplateValue.int(start + $0 * step) }
        return .view(SequenceView(kind: .range(start: start, stop: stop, step: step), items: items))
    }

    /// Python's `dict(*args, **kwargs)`: an optional mapping or iterable of pairs, then keywords.
    private static func dictionary(
        _ arguments: TemplateArguments, function: String
    ) throws(ValueFailure) -> TemplateDictionary {
        guard arguments.positional.count <= 1 else {
            throw .type(
                "\(function) expected at most 1 argument, got \(arguments.positional.count)")
        }

        var result = TemplateDictionary()
        if let source = arguments.positional.first {
            if case .dictionary(let dictionary) = source {
                result = dictionary
            } else {
                for pair in try source.iterate() {
                    let parts = try pair.iterate()
                    guard parts.count == 2 else {
                        throw .runtime(
                            "dictionary update sequence element has length \(parts.count); "
                                + "2 is required")
                    }
                    try parts[0].requireHashable()
                    result.set(parts[1], for: parts[0])
                }
            }
        }
        for (name, value) in arguments.keyword {
            result.set(value, for: .string(name))
        }
        return result
    }

    // MARK: Methods

    private static func callStringMethod(
        _ text: String, _ name: String, _ arguments: TemplateArguments
    ) throws(ValueFailure) -> TemplateValue {
        switch name {
        case "strip", "lstrip", "rstrip":
            let characters = try arguments.bind(name, [("chars", TemplateValue.none)])[0]
            let set: String?
            switch characters {
            case .none: set = nil
            case .string(let value): set = value
            default: throw .type("\(name) arg must be None or str")
            }
            return .string(
                PythonString.strip(
                    text, characters: set, leading: name != "rstrip", trailing: name != "lstrip"))
        case "startswith", "endswith":
            return .bool(try matchesAffix(text, name, arguments))
        case "split":
            return try split(text, arguments)
        case "upper", "lower", "capitalize", "title":
            _ = try arguments.bind(name, [])
            switch name {
            case "upper": return .string(PythonString.uppercased(text))
            case "lower": return .string(PythonString.lowercased(text))
            case "capitalize": return .string(PythonString.capitalized(text))
            default: return .string(PythonString.titlecased(text))
            }
        case "replace":
            let bound = try arguments.bind(name, [("old", nil), ("new", nil), ("count", .int(-1))])
            guard case .string(let old) = bound[0], case .string(let new) = bound[1] else {
                throw .type("replace() arguments 1 and 2 must be str")
            }
            guard case .int(let count) = bound[2] else {
                throw .type("'\(bound[2].typeName)' object cannot be interpreted as an integer")
            }
            return .string(PythonString.replace(text, old: old, new: new, count: count))
        case "join":
            let items = try arguments.bind(name, [("iterable", nil)])[0].iterate()
            var pieces: [String] = []
            for (index, item) in items.enumerated() {
                guard case .string(let piece) = item else {
                    throw .type(
                        "sequence item \(index): expected str instance, \(item.typeName) found")
                }
                pieces.append(piece)
            }
            return .string(pieces.joined(separator: text))
        default:
            throw .unsupported("method 'str.\(name)'")
        }
    }

    /// `str.startswith` and `str.endswith`, with a string or a tuple of strings.
    private static func matchesAffix(
        _ text: String, _ name: String, _ arguments: TemplateArguments
    ) throws(ValueFailure) -> Bool {
        let bound = try arguments.bind(
            name, [("prefix", nil), ("start", TemplateValue.none), ("end", TemplateValue.none)])
        guard case .none = bound[1], case .none = bound[2] else {
            throw .unsupported("start and end arguments of str.\(name)")
        }

        let candidates: [TemplateValue]
        switch bound[0] {
        case .string: candidates = [bound[0]]
        case .tuple(let items): candidates = items
        default:
            throw .type(
                "\(name) first arg must be str or a tuple of str, not \(bound[0].typeName)")
        }
        for candidate in candidates {
            guard case .string(let affix) = candidate else {
                throw .type("tuple for \(name) must only contain str, not \(candidate.typeName)")
            }
            let matches =
                name == "startswith"
                ? PythonString.hasPrefix(text, affix) : PythonString.hasSuffix(text, affix)
            if matches { return true }
        }
        return false
    }

    private static func split(
        _ text: String, _ arguments: TemplateArguments
    ) throws(ValueFailure) -> TemplateValue {
        let bound = try arguments.bind(
            "split", [("sep", TemplateValue.none), ("maxsplit", TemplateValue.int(-1))])
        let separator: String?
        switch bound[0] {
        case .none: separator = nil
        case .string(let value):
            guard !value.isEmpty else { throw .runtime("empty separator") }
            separator = value
        default: throw .type("must be str or None, not \(bound[0].typeName)")
        }
        guard case .int(let maxSplit) = bound[1] else {
            throw .type("'\(bound[1].typeName)' object cannot be interpreted as an integer")
        }
        let pieces = PythonString.split(text, separator: separator, maxSplit: maxSplit)
        return .list(pieces.map { .string($0) })
    }

    private static func callDictionaryMethod(
        _ dictionary: TemplateDictionary, _ name: String, _ arguments: TemplateArguments
    ) throws(ValueFailure) -> TemplateValue {
        switch name {
        case "get":
            let bound = try arguments.bind(name, [("key", nil), ("default", TemplateValue.none)])
            try bound[0].requireHashable()
            return dictionary.value(for: bound[0]) ?? bound[1]
        case "items":
            _ = try arguments.bind(name, [])
            let pairs = dictionary.entries.map { TemplateValue.tuple([$0, $1]) }
            return .view(SequenceView(kind: .dictionaryItems, items: pairs))
        case "keys":
            _ = try arguments.bind(name, [])
            return .view(SequenceView(kind: .dictionaryKeys, items: dictionary.keys))
        case "values":
            _ = try arguments.bind(name, [])
            return .view(SequenceView(kind: .dictionaryValues, items: dictionary.values))
        default:
            throw .unsupported("method 'dict.\(name)'")
        }
    }
}
