//! A plain-text rendering of a report for terminals and CI logs.

use std::fmt::Write;

use super::Report;

/// Longest reason shown before it is cut; the JSON format has it whole.
const REASON_WIDTH: usize = 100;

pub fn render_table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "dspm-audit report: account {} ({}), region {}, collected {}, source {:?}",
        report.account.id,
        report.account.partition,
        report.region,
        report.collected_at,
        report.source
    );
    for f in &report.frameworks {
        let c = f.counts;
        let _ = writeln!(
            out,
            "{} {}: {} PASS, {} FAIL, {} ERROR, {} MANUAL",
            f.id, f.version, c.pass, c.fail, c.error, c.manual
        );
    }
    let _ = writeln!(out);
    let rows: Vec<[String; 5]> = report
        .results
        .iter()
        .map(|r| {
            [
                r.status.as_str().to_string(),
                format!("{} {}", r.framework, r.control),
                r.check.clone().unwrap_or_else(|| "-".into()),
                r.resource.clone(),
                shorten(&r.reason),
            ]
        })
        .collect();
    let headers = ["STATUS", "CONTROL", "CHECK", "RESOURCE", "REASON"];
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == 4 {
                s.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                s.push_str(cell);
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        s.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(headers));
    for row in &rows {
        let _ = writeln!(
            out,
            "{}",
            line([&row[0], &row[1], &row[2], &row[3], &row[4]].map(String::as_str))
        );
    }
    out
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= REASON_WIDTH {
        return text.to_string();
    }
    let cut: String = text.chars().take(REASON_WIDTH - 1).collect();
    format!("{cut}…")
}
