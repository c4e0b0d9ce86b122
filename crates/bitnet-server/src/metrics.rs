//! The server's counters and histograms, rendered in Prometheus' text format at `/metrics`:
//! requests by endpoint and status, request latency and time to first token by endpoint, plus
//! the batch engine's token counters, queue depth and active slots.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use bitnet_engine::EngineStats;

/// Upper bounds (seconds) of the latency buckets.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// A cumulative Prometheus histogram.
#[derive(Debug, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; LATENCY_BUCKETS.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&mut self.counts) {
            if value <= *bound {
                *count += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(&'static str, u16), u64>,
    latency: BTreeMap<&'static str, Histogram>,
    first_token: BTreeMap<&'static str, Histogram>,
}

/// The server's metrics (see the module docs).
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// The endpoint label for a request path: known paths as themselves, anything else `other`
/// (so clients cannot grow the label set).
pub fn endpoint_label(path: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "/",
        "/health",
        "/metrics",
        "/tokenize",
        "/detokenize",
        "/v1/models",
        "/v1/chat/completions",
        "/v1/completions",
    ];
    KNOWN
        .iter()
        .find(|&&known| known == path)
        .copied()
        .unwrap_or("other")
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one answered request.
    pub fn count_request(&self, endpoint: &'static str, status: u16) {
        *self.lock().requests.entry((endpoint, status)).or_default() += 1;
    }

    /// Records a generation request's time from arrival to its last token.
    pub fn observe_latency(&self, endpoint: &'static str, seconds: f64) {
        self.lock()
            .latency
            .entry(endpoint)
            .or_insert_with(Histogram::new)
            .observe(seconds);
    }

    /// Records a generation request's time from arrival to its first token.
    pub fn observe_first_token(&self, endpoint: &'static str, seconds: f64) {
        self.lock()
            .first_token
            .entry(endpoint)
            .or_insert_with(Histogram::new)
            .observe(seconds);
    }

    /// The Prometheus text exposition; `engine` is `None` while the model loads.
    pub fn render(&self, engine: Option<EngineStats>) -> String {
        let inner = self.lock();
        let mut out = String::new();
        out.push_str(
            "# HELP bitnet_requests_total HTTP requests answered, by endpoint and status.\n",
        );
        out.push_str("# TYPE bitnet_requests_total counter\n");
        for ((endpoint, status), n) in &inner.requests {
            let _ = writeln!(
                out,
                "bitnet_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP bitnet_request_duration_seconds Generation requests: arrival to last token.\n",
        );
        out.push_str("# TYPE bitnet_request_duration_seconds histogram\n");
        for (endpoint, h) in &inner.latency {
            h.render(
                &mut out,
                "bitnet_request_duration_seconds",
                &format!("endpoint=\"{endpoint}\""),
            );
        }
        out.push_str("# HELP bitnet_time_to_first_token_seconds Generation requests: arrival to first token.\n");
        out.push_str("# TYPE bitnet_time_to_first_token_seconds histogram\n");
        for (endpoint, h) in &inner.first_token {
            h.render(
                &mut out,
                "bitnet_time_to_first_token_seconds",
                &format!("endpoint=\"{endpoint}\""),
            );
        }
        let ready = u8::from(engine.is_some());
        let _ = writeln!(out, "# HELP bitnet_model_ready 1 once the model is loaded.\n# TYPE bitnet_model_ready gauge\nbitnet_model_ready {ready}");
        if let Some(s) = engine {
            let lines: [(&str, &str, &str, u64); 10] = [
                (
                    "bitnet_prompt_tokens_total",
                    "counter",
                    "Prompt tokens evaluated.",
                    s.prompt_tokens,
                ),
                (
                    "bitnet_prompt_tokens_cached_total",
                    "counter",
                    "Prompt tokens taken from the prompt cache instead of evaluated.",
                    s.cached_tokens,
                ),
                (
                    "bitnet_kv_cache_bytes",
                    "gauge",
                    "Bytes of the slots' KV caches allocated (one per slot once used).",
                    s.kv_cache_bytes,
                ),
                (
                    "bitnet_prompt_cache_ram_bytes",
                    "gauge",
                    "Bytes of KV snapshots held for prompt reuse (--cache-ram).",
                    s.cache_ram_bytes,
                ),
                (
                    "bitnet_completion_tokens_total",
                    "counter",
                    "Tokens generated.",
                    s.completion_tokens,
                ),
                (
                    "bitnet_batch_steps_total",
                    "counter",
                    "Batched forward passes run.",
                    s.steps,
                ),
                (
                    "bitnet_batch_rows_total",
                    "counter",
                    "Token rows evaluated over all forward passes.",
                    s.batched_rows,
                ),
                (
                    "bitnet_queue_depth",
                    "gauge",
                    "Requests waiting for a slot.",
                    s.queued as u64,
                ),
                (
                    "bitnet_active_slots",
                    "gauge",
                    "Sequences in flight.",
                    s.active as u64,
                ),
                (
                    "bitnet_slots",
                    "gauge",
                    "Sequence slots (--parallel).",
                    s.slots as u64,
                ),
            ];
            for (name, kind, help, value) in lines {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe_latency("/v1/completions", 0.3);
        m.observe_latency("/v1/completions", 7.0);
        let text = m.render(None);
        assert!(text.contains(
            "bitnet_request_duration_seconds_bucket{endpoint=\"/v1/completions\",le=\"0.25\"} 0"
        ));
        assert!(text.contains(
            "bitnet_request_duration_seconds_bucket{endpoint=\"/v1/completions\",le=\"0.5\"} 1"
        ));
        assert!(text.contains(
            "bitnet_request_duration_seconds_bucket{endpoint=\"/v1/completions\",le=\"10\"} 2"
        ));
        assert!(
            text.contains("bitnet_request_duration_seconds_count{endpoint=\"/v1/completions\"} 2")
        );
    }

    #[test]
    fn unknown_paths_share_one_label() {
        assert_eq!(endpoint_label("/v1/completions"), "/v1/completions");
        assert_eq!(endpoint_label("/../../etc/passwd"), "other");
    }
}
