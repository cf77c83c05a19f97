import Foundation

/// Reads a whole UTF-8 text file; nil when it cannot be read.
func readTextFile(_ path: String) -> String? {
    try? String(contentsOfFile: path, encoding: .utf8)
}
