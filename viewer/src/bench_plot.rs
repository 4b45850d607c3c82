//! The bench plot as a self-contained SVG: a histogram of the round trip with p50/p99 marks
//! (left) and the median of every stage stacked into one bar (right).

use std::fmt::Write as _;

use crate::bench::{BenchReport, STAGES};

const COLOURS: [&str; 10] = [
    "#4e79a7", "#a0cbe8", "#f28e2b", "#ffbe7d", "#59a14f", "#8cd17d", "#b6992d", "#f1ce63",
    "#e15759", "#ff9d9a",
];

/// Renders `r`.
pub fn svg(r: &BenchReport) -> String {
    let (w, h) = (900.0f64, 420.0f64);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
"#
    );
    let (stages, total) = r.percentiles();
    let title = format!(
        "Sightline input → photon: {} probes, p50 {:.1} ms, p99 {:.1} ms{}",
        r.samples.len(),
        total.p50 as f64 / 1e3,
        total.p99 as f64 / 1e3,
        r.wan
            .as_ref()
            .map(|w| format!(" (WAN {w})"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        r#"<text x="20" y="24" font-size="15">{}</text>"#,
        esc(&title)
    );
    // Histogram.
    let (x0, y0, pw, ph) = (60.0, 50.0, 520.0, 300.0);
    let totals: Vec<f64> = r.samples.iter().map(|s| s.total_us as f64 / 1e3).collect();
    let max = totals.iter().cloned().fold(1.0f64, f64::max).ceil();
    let bins = 40usize;
    let mut counts = vec![0usize; bins];
    for t in &totals {
        counts[((t / max * bins as f64) as usize).min(bins - 1)] += 1;
    }
    let cmax = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let bw = pw / bins as f64;
    for (i, c) in counts.iter().enumerate() {
        let bh = *c as f64 / cmax * ph;
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#4e79a7"/>"##,
            x0 + i as f64 * bw,
            y0 + ph - bh,
            (bw - 1.0).max(0.5),
            bh
        );
    }
    let _ = writeln!(
        s,
        r#"<line x1="{x0}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
        y0 + ph,
        x0 + pw,
        y0 + ph
    );
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let x = x0 + pw * k as f64 / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle">{v:.0} ms</text>"#,
            y0 + ph + 16.0
        );
    }
    for (label, v, colour) in [("p50", total.p50, "#e15759"), ("p99", total.p99, "#b07aa1")] {
        let x = x0 + (v as f64 / 1e3) / max * pw;
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{}" stroke="{colour}" stroke-dasharray="4 3"/><text x="{:.1}" y="{}" fill="{colour}">{label}</text>"#,
            y0 + ph,
            x + 3.0,
            y0 + 12.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">round trip (probes per bin)</text>"#,
        x0 + pw / 2.0,
        y0 + ph + 34.0
    );
    // Stage stack of medians.
    let (sx, sw) = (640.0, 60.0);
    let sum: f64 = stages.iter().map(|p| p.p50 as f64).sum::<f64>().max(1.0);
    let mut y = y0 + ph;
    for (i, (name, p)) in STAGES.iter().zip(stages.iter()).enumerate() {
        let hgt = p.p50 as f64 / sum * ph;
        y -= hgt;
        let _ = writeln!(
            s,
            r#"<rect x="{sx}" y="{y:.1}" width="{sw}" height="{hgt:.1}" fill="{}"/>"#,
            COLOURS[i]
        );
        let ly = y0 + 12.0 + i as f64 * 18.0;
        let _ = writeln!(
            s,
            r#"<rect x="{}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}">{name} {:.2} ms</text>"#,
            sx + sw + 14.0,
            ly - 9.0,
            COLOURS[i],
            sx + sw + 28.0,
            ly,
            p.p50 as f64 / 1e3
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">median per stage</text>"#,
        sx + sw / 2.0,
        y0 + ph + 34.0
    );
    s.push_str("</svg>\n");
    s
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
