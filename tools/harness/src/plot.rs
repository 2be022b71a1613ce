// SPDX-License-Identifier: GPL-2.0

//! Grouped bar charts as self-contained SVG, for the benchmark results.

use std::fmt::Write;

/// One chart: `groups` along x, one bar per series in each group.
pub struct BarChart<'a> {
    /// Title above the chart.
    pub title: &'a str,
    /// Label of the y axis.
    pub y_label: &'a str,
    /// Group labels (x axis).
    pub groups: Vec<String>,
    /// `(series name, one value per group)`; NaN leaves a gap.
    pub series: Vec<(String, Vec<f64>)>,
    /// A horizontal reference line (e.g. 1.0 for ratios).
    pub reference: Option<f64>,
}

const COLOURS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl BarChart<'_> {
    /// Renders the chart.
    pub fn svg(&self) -> String {
        let (left, right, top, bottom) = (70.0, 20.0, 40.0, 110.0);
        let group_w = 22.0 * self.series.len().max(1) as f64 + 24.0;
        let plot_w = group_w * self.groups.len().max(1) as f64;
        let plot_h = 300.0;
        let width = left + plot_w + right + 160.0;
        let height = top + plot_h + bottom;
        let vmax = self
            .series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .chain(self.reference)
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(1e-9)
            * 1.1;
        let y = |v: f64| top + plot_h - v / vmax * plot_h;
        let mut s = String::new();
        let _ = write!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
             font-family=\"sans-serif\" font-size=\"11\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"{left}\" y=\"20\" font-size=\"14\">{}</text>\n",
            esc(self.title)
        );
        // Axes and ticks.
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>\n\
             <line x1=\"{left}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/>",
            top + plot_h,
            left + plot_w
        );
        for i in 0..=5 {
            let v = vmax / 1.1 * f64::from(i) / 5.0;
            let yy = y(v);
            let _ = writeln!(
                s,
                "<line x1=\"{}\" y1=\"{yy:.1}\" x2=\"{left}\" y2=\"{yy:.1}\" stroke=\"black\"/>\
                 <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                left - 4.0,
                left - 6.0,
                yy + 4.0,
                fmt_tick(v)
            );
        }
        let _ = writeln!(
            s,
            "<text transform=\"translate(16,{:.0}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            top + plot_h / 2.0,
            esc(self.y_label)
        );
        if let Some(r) = self.reference {
            let _ = writeln!(
                s,
                "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#444\" \
                 stroke-dasharray=\"4,3\"/>",
                y(r),
                left + plot_w
            );
        }
        for (g, label) in self.groups.iter().enumerate() {
            let gx = left + group_w * g as f64 + 12.0;
            for (k, (_, vals)) in self.series.iter().enumerate() {
                let v = vals.get(g).copied().unwrap_or(f64::NAN);
                if !v.is_finite() {
                    continue;
                }
                let x = gx + 22.0 * k as f64;
                let _ = writeln!(
                    s,
                    "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"20\" height=\"{:.1}\" fill=\"{}\">\
                     <title>{}</title></rect>",
                    y(v),
                    (top + plot_h - y(v)).max(0.0),
                    COLOURS[k % COLOURS.len()],
                    fmt_tick(v)
                );
            }
            let cx = gx + 11.0 * self.series.len() as f64;
            let _ = writeln!(
                s,
                "<text transform=\"translate({cx:.1},{:.1}) rotate(40)\">{}</text>",
                top + plot_h + 12.0,
                esc(label)
            );
        }
        for (k, (name, _)) in self.series.iter().enumerate() {
            let ly = top + 16.0 * k as f64;
            let lx = left + plot_w + 16.0;
            let _ = writeln!(
                s,
                "<rect x=\"{lx:.1}\" y=\"{ly:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                COLOURS[k % COLOURS.len()],
                lx + 16.0,
                ly + 10.0,
                esc(name)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

fn fmt_tick(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
