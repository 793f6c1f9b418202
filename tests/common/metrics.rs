//! One parsed scrape of a broker's `/metrics` (prometheus-parse), for tests that read series.
//! (`tests/metrics_http.rs` keeps its own, which also checks the exposition's layout.)

/// The samples of one `GET /metrics`.
pub struct Scrape {
    /// The exposition as received, for failure messages.
    pub text: String,
    samples: Vec<prometheus_parse::Sample>,
}

impl Scrape {
    /// Scrapes the metrics listener at `metrics_addr`.
    pub fn of(metrics_addr: &str) -> Self {
        let a = super::http::get(metrics_addr, "/metrics");
        assert_eq!(a.status, 200, "{}", a.body);
        let lines = a.body.lines().map(|l| Ok(l.to_owned()));
        let samples = prometheus_parse::Scrape::parse(lines)
            .expect("metrics parse")
            .samples;
        Self {
            text: a.body,
            samples,
        }
    }

    /// The value of the series `name` (as exposed: a counter's name ends in `_total`) with
    /// exactly `labels`; panics when there is none.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.metric == name && s.labels.len() == labels.len())
            .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .and_then(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => Some(v),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no series {name}{labels:?} in:\n{}", self.text))
    }

    /// The value of counter `name` (given without `_total`) with exactly `labels`.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(&format!("{name}_total"), labels)
    }
}
