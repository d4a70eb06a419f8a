//! The Markdown the comparison writes: one table per scenario, the machine, the command;
//! spliced into `docs/BENCHMARKS.md` between two markers so the rest of the file stays.

use std::path::Path;

use crate::BenchError;

pub const START: &str = "<!-- bench-compare:start (written by `make bench-compare`; edit outside the markers) -->";
pub const END: &str = "<!-- bench-compare:end -->";

/// One scenario's table.
#[derive(Debug, Default)]
pub struct Table {
    pub title: String,
    /// Lines above the table: what was measured and how.
    pub intro: Vec<String>,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Lines below the table: errors seen, goals met or missed.
    pub notes: Vec<String>,
}

impl Table {
    /// An empty table with these column names (title, intro and rows filled in after).
    pub fn with_header(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            ..Table::default()
        }
    }

    pub fn markdown(&self) -> String {
        let mut out = format!("### {}\n\n", self.title);
        for line in &self.intro {
            out.push_str(line);
            out.push('\n');
        }
        if !self.intro.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("| {} |\n", self.header.join(" | ")));
        out.push_str(&format!("|{}\n", " --- |".repeat(self.header.len())));
        for row in &self.rows {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for line in &self.notes {
                out.push_str(&format!("- {line}\n"));
            }
        }
        out.push('\n');
        out
    }
}

/// The whole comparison.
pub struct Report {
    pub machine: String,
    pub versions: Vec<String>,
    pub command: String,
    pub duration: std::time::Duration,
    pub tables: Vec<Table>,
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = String::from("## tagcfg beside etcd (`make bench-compare`)\n\n");
        out.push_str(&format!("Machine: {}.\n", self.machine));
        for version in &self.versions {
            out.push_str(&format!("{version}.\n"));
        }
        out.push_str(&format!(
            "Command: `{}` ({:.0} s). Load generator: `crates/bench` (`tagcfg-bench compare`), \
             the same process and client code for both systems, sharing the machine's cores with \
             both servers, so only the figures of one run compare.\n\n",
            self.command,
            self.duration.as_secs_f64()
        ));
        for table in &self.tables {
            out.push_str(&table.markdown());
        }
        out
    }
}

/// `doc` with the text between the markers replaced by `generated` (appended, with the
/// markers, when they are missing).
pub fn splice(doc: &str, generated: &str) -> String {
    let block = format!("{START}\n\n{}{END}\n", generated);
    match (doc.find(START), doc.find(END)) {
        (Some(start), Some(end)) if start < end => {
            format!(
                "{}{block}{}",
                &doc[..start],
                doc[end + END.len()..].trim_start_matches('\n')
            )
        }
        _ => format!("{}\n{block}", doc.trim_end_matches('\n').to_owned() + "\n"),
    }
}

/// Writes `generated` into the file at `path` between the markers.
pub fn write_into(path: &Path, generated: &str) -> Result<(), BenchError> {
    let error = |source| BenchError::Report {
        path: path.display().to_string(),
        source,
    };
    let doc = match std::fs::read_to_string(path) {
        Ok(doc) => doc,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(error(e)),
    };
    std::fs::write(path, splice(&doc, generated)).map_err(error)
}

/// Cores, CPU model, memory and kernel, from `/proc`.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores ({model}), {memory_gib:.0} GiB RAM, Linux {}, everything on 127.0.0.1",
        kernel.trim()
    )
}

/// `a ÷ b` as `2.31×` (`–` when `b` is zero).
pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

/// `12345.6` as `12,346`.
pub fn count(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The latencies at `quantiles` of a histogram of nanoseconds, as "p50 / p99 ms" cells do.
pub fn percentiles(latency: &hdrhistogram::Histogram<u64>, quantiles: &[f64]) -> String {
    quantiles
        .iter()
        .map(|&q| ms(crate::load::ms_at(latency, q)))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Milliseconds with two decimals below 10 ms, one above.
pub fn ms(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splicing_replaces_only_the_text_between_the_markers() {
        let doc = format!("# Benchmarks\n\nbefore\n\n{START}\n\nold tables\n{END}\n\n## After\n");
        let spliced = splice(&doc, "new tables\n");
        assert_eq!(
            spliced,
            format!("# Benchmarks\n\nbefore\n\n{START}\n\nnew tables\n{END}\n## After\n")
        );
        assert_eq!(
            splice(&spliced, "new tables\n"),
            spliced,
            "splicing twice changes nothing"
        );
    }

    #[test]
    fn splicing_appends_when_the_markers_are_missing() {
        let spliced = splice("# Benchmarks\n\ntext\n", "tables\n");
        assert_eq!(spliced, format!("# Benchmarks\n\ntext\n\n{START}\n\ntables\n{END}\n"));
    }

    #[test]
    fn numbers_read_as_a_person_writes_them() {
        assert_eq!(count(1234567.4), "1,234,567");
        assert_eq!(count(999.0), "999");
        assert_eq!(ratio(3.0, 2.0), "1.50×");
        assert_eq!(ratio(1.0, 0.0), "–");
        assert_eq!((ms(0.456), ms(12.34)), ("0.46".to_owned(), "12.3".to_owned()));
    }

    #[test]
    fn percentiles_are_milliseconds_joined_by_slashes() {
        let mut latency = crate::load::histogram();
        for ms in 1..=100u64 {
            latency.record(ms * 1_000_000).unwrap();
        }
        assert_eq!(percentiles(&latency, &[0.5, 0.99]), "50.0 / 99.0");
        assert_eq!(percentiles(&latency, &[0.01]), "1.00");
    }

    #[test]
    fn a_table_is_markdown_with_its_intro_and_notes() {
        let table = Table {
            title: "T".into(),
            intro: vec!["what".into()],
            header: vec!["a".into(), "b".into()],
            rows: vec![vec!["1".into(), "2".into()]],
            notes: vec!["note".into()],
        };
        assert_eq!(
            table.markdown(),
            "### T\n\nwhat\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n\n- note\n\n"
        );
    }
}
