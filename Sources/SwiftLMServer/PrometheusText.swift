import Foundation
import SwiftLMServing

/// The engine's metrics in Prometheus's text exposition format (version 0.0.4).
enum PrometheusText {
    static func render(_ m: EngineMetrics) -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP swiftlm_\(name) \(help)\n# TYPE swiftlm_\(name) \(type)\n"
            for (labels, value) in samples { out += "swiftlm_\(name)\(labels) \(format(value))\n" }
        }
        func histogram(_ name: String, _ help: String, _ h: Histogram) {
            out += "# HELP swiftlm_\(name) \(help)\n# TYPE swiftlm_\(name) histogram\n"
            for (bound, count) in zip(h.bounds.map(format) + ["+Inf"], h.cumulativeCounts) {
                out += "swiftlm_\(name)_bucket{le=\"\(bound)\"} \(count)\n"
            }
            out += "swiftlm_\(name)_sum \(format(h.sum))\nswiftlm_\(name)_count \(h.count)\n"
        }

        metric(
            "requests_waiting", "gauge", "Requests queued, not yet running.",
            [("", Double(m.waitingRequests))])
        metric(
            "requests_running", "gauge", "Requests holding KV blocks.",
            [("", Double(m.runningRequests))])
        metric(
            "kv_blocks_total", "gauge", "Blocks of the paged KV cache.",
            [("", Double(m.kvBlockCount))])
        metric("kv_block_size", "gauge", "Positions per KV block.", [("", Double(m.kvBlockSize))])
        metric(
            "kv_blocks_used", "gauge", "KV blocks held by requests.",
            [("", Double(m.kvBlocksUsed))])
        metric(
            "kv_blocks_free", "gauge", "KV blocks free, cached prefixes included.",
            [("", Double(m.kvBlocksFree))])
        metric(
            "kv_blocks_cached", "gauge", "Free KV blocks that keep a reusable prompt prefix.",
            [("", Double(m.kvBlocksCached))])
        metric(
            "prefix_cache_hit_blocks_total", "counter",
            "Prompt blocks found in the prefix cache instead of computed.",
            [("", Double(m.prefixCacheHitBlocks))])
        metric(
            "prompt_tokens_total", "counter", "Prompt tokens received.",
            [("", Double(m.promptTokens))])
        metric(
            "generated_tokens_total", "counter", "Tokens generated.",
            [("", Double(m.generatedTokens))])
        metric(
            "requests_finished_total", "counter", "Requests finished, by reason.",
            [FinishReason.stop, .length, .cancelled].map {
                ("{reason=\"\($0.rawValue)\"}", Double(m.requestsFinished[$0] ?? 0))
            })
        metric(
            "preemptions_total", "counter", "Requests preempted to free KV blocks.",
            [("", Double(m.preemptions))])
        metric("engine_steps_total", "counter", "Batched forward passes.", [("", Double(m.steps))])
        metric(
            "generation_tokens_per_second", "gauge",
            "Tokens generated per second over the last seconds.", [("", m.tokensPerSecond)])
        histogram(
            "time_to_first_token_seconds", "Time from arrival to first token.",
            m.timeToFirstToken)
        histogram(
            "inter_token_latency_seconds", "Time between consecutive tokens of a request.",
            m.interTokenLatency)
        return out
    }

    private static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}
