//! A dependency-free SVG bar chart: overhead over bare (ns) and allocations per request.

use std::fmt::Write as _;

use crate::Row;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn svg(rows: &[Row]) -> String {
    let bare = rows.iter().find(|r| r.name == "bare").expect("bare");
    let bars: Vec<(&str, f64, f64)> = rows
        .iter()
        .filter(|r| r.name != "bare")
        .map(|r| {
            (
                r.name,
                (r.median_ns - bare.median_ns).max(0.0),
                r.allocs - bare.allocs,
            )
        })
        .collect();
    let max_ns = bars.iter().map(|b| b.1).fold(1.0, f64::max);
    let max_alloc = bars.iter().map(|b| b.2).fold(1.0, f64::max);
    let row_h = 28.0;
    let label_w = 140.0;
    let bar_w = 300.0;
    let gap = 60.0;
    let width = label_w + 2.0 * bar_w + gap + 80.0;
    let height = 60.0 + row_h * bars.len() as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{label_w}" y="20" font-weight="bold">overhead over bare, ns/request (median)</text>"#
    );
    let x2 = label_w + bar_w + gap;
    let _ = writeln!(
        out,
        r#"<text x="{x2}" y="20" font-weight="bold">allocations/request over bare</text>"#
    );
    for (i, (name, ns, allocs)) in bars.iter().enumerate() {
        let y = 36.0 + row_h * i as f64;
        let ours = name.starts_with("ours");
        let fill = if ours { "#2b7bb9" } else { "#9aa5b1" };
        let w1 = bar_w * ns / max_ns;
        let w2 = bar_w * allocs.max(0.0) / max_alloc;
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            label_w - 8.0,
            y + 14.0,
            escape(name)
        );
        let _ = writeln!(
            out,
            r#"<rect x="{label_w}" y="{y}" width="{w1:.1}" height="18" fill="{fill}"/><text x="{:.1}" y="{}">{ns:.0}</text>"#,
            label_w + w1 + 4.0,
            y + 14.0
        );
        let _ = writeln!(
            out,
            r#"<rect x="{x2}" y="{y}" width="{w2:.1}" height="18" fill="{fill}"/><text x="{:.1}" y="{}">{allocs:.1}</text>"#,
            x2 + w2 + 4.0,
            y + 14.0
        );
    }
    out.push_str("</svg>\n");
    out
}
