//! Prometheus's text exposition format (version 0.0.4), written by hand: histograms,
//! counters and gauges with labels, which is all keg exports.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Label names and values of one series, in a fixed order.
pub type Labels = Vec<(&'static str, String)>;

/// A cumulative histogram with fixed upper bounds.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// An empty histogram with these bucket upper bounds (ascending; +Inf is implied).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    /// Counts one observation.
    pub fn observe(&mut self, value: f64) {
        for (bound, count) in self.bounds.iter().zip(&mut self.counts) {
            if value <= *bound {
                *count += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    /// How many observations there were.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Metric text being written.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// The finished text.
    pub fn finish(self) -> String {
        self.text
    }

    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// A family of histograms.
    pub fn histograms(&mut self, name: &str, help: &str, series: &BTreeMap<Labels, Histogram>) {
        self.header(name, "histogram", help);
        for (labels, histogram) in series {
            for (bound, count) in histogram.bounds.iter().zip(&histogram.counts) {
                let le = format_value(*bound);
                self.sample(&format!("{name}_bucket"), labels, Some(&le), *count as f64);
            }
            let inf = Some("+Inf");
            self.sample(
                &format!("{name}_bucket"),
                labels,
                inf,
                histogram.count as f64,
            );
            self.sample(&format!("{name}_sum"), labels, None, histogram.sum);
            self.sample(
                &format!("{name}_count"),
                labels,
                None,
                histogram.count as f64,
            );
        }
    }

    /// A family of counters or gauges (`kind`).
    pub fn values(&mut self, name: &str, kind: &str, help: &str, series: &BTreeMap<Labels, f64>) {
        self.header(name, kind, help);
        for (labels, value) in series {
            self.sample(name, labels, None, *value);
        }
    }

    fn sample(&mut self, name: &str, labels: &Labels, le: Option<&str>, value: f64) {
        let mut pairs: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        if let Some(le) = le {
            pairs.push(format!("le=\"{le}\""));
        }
        let labels = if pairs.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", pairs.join(","))
        };
        let _ = writeln!(self.text, "{name}{labels} {}", format_value(value));
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Go's shortest float form, as Prometheus clients print it.
fn format_value(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    format!("{value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        for v in [0.05, 0.5, 5.0] {
            h.observe(v);
        }
        let mut e = Exposition::default();
        let series = BTreeMap::from([(vec![("verb", "GET".to_owned())], h)]);
        e.histograms("x_seconds", "Latency.", &series);
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP x_seconds Latency.\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{verb=\"GET\",le=\"0.1\"} 1\n\
             x_seconds_bucket{verb=\"GET\",le=\"1\"} 2\n\
             x_seconds_bucket{verb=\"GET\",le=\"+Inf\"} 3\n\
             x_seconds_sum{verb=\"GET\"} 5.55\n\
             x_seconds_count{verb=\"GET\"} 3\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let mut e = Exposition::default();
        let series = BTreeMap::from([(vec![("ns", "a\"b\\c\n".to_owned())], 1.5)]);
        e.values("y_total", "counter", "Things.", &series);
        assert!(e.finish().ends_with("y_total{ns=\"a\\\"b\\\\c\\n\"} 1.5\n"));
    }
}
