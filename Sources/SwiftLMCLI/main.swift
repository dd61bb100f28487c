print("swiftlm")
