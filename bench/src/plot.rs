//! SVG plots of reports (plotters, SVG backend only): CPU and RSS against the number of
//! cameras, the latency distributions, and the machine over time, one series per server so
//! a comparison shows them side by side.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use crate::report::Report;

const COLORS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// A named line.
pub(crate) type Series = (String, Vec<(f64, f64)>);

/// Draws line series (with point marks) into an SVG file.
pub(crate) fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    legend: SeriesLabelPosition,
) -> anyhow::Result<()> {
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x_max, mut y_max) = (1.0f64, 1.0f64);
    for (x, y) in pts {
        x_max = x_max.max(*x);
        y_max = y_max.max(*y);
    }
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|e| anyhow!("plot {title}: {e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max * 1.05, 0.0..y_max * 1.1)
        .map_err(|e| anyhow!("plot {title}: {e}"))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .map_err(|e| anyhow!("plot {title}: {e}"))?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| anyhow!("plot {title}: {e}"))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 2, color.filled())))
            .map_err(|e| anyhow!("plot {title}: {e}"))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(legend)
        .draw()
        .map_err(|e| anyhow!("plot {title}: {e}"))?;
    root.present().map_err(|e| anyhow!("plot {title}: {e}"))?;
    Ok(())
}

/// Writes the plots of one or more reports (one series each) into `dir`; returns the file
/// names.
pub(crate) fn all(dir: &Path, reports: &[&Report]) -> anyhow::Result<Vec<String>> {
    let mut files = Vec::new();
    let by_cameras = |f: &dyn Fn(&crate::report::Sample) -> f64| -> Vec<Series> {
        reports
            .iter()
            .map(|r| {
                let mut pts: Vec<(f64, f64)> = r
                    .timeseries
                    .iter()
                    .filter(|s| s.cameras > 0)
                    .map(|s| (s.cameras as f64, f(s)))
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                (r.server.name.clone(), pts)
            })
            .collect()
    };
    let plots: [(&str, &str, &str, Vec<Series>); 2] = [
        (
            "cpu_vs_cameras.svg",
            "Server CPU vs cameras",
            "% of one core",
            by_cameras(&|s| s.server_cpu_pct),
        ),
        (
            "rss_vs_cameras.svg",
            "Server RSS vs cameras",
            "MB",
            by_cameras(&|s| s.server_rss_mb),
        ),
    ];
    for (file, title, y, series) in plots {
        lines(
            &dir.join(file),
            title,
            "cameras publishing",
            y,
            &series,
            SeriesLabelPosition::UpperLeft,
        )?;
        files.push(file.to_owned());
    }
    let mut dist: Vec<Series> = Vec::new();
    for r in reports {
        for (name, buckets) in &r.distributions {
            let total: u64 = buckets.iter().map(|b| b.1).sum();
            if total == 0 {
                continue;
            }
            // Cumulative: distributions of very different widths stay readable side by side.
            let mut seen = 0u64;
            let pts = buckets
                .iter()
                .map(|(ms, n)| {
                    seen += n;
                    (*ms, seen as f64 * 100.0 / total as f64)
                })
                .collect();
            dist.push((format!("{} {name}", r.server.name), pts));
        }
    }
    if !dist.is_empty() {
        lines(
            &dir.join("latency.svg"),
            "Latency distribution (cumulative)",
            "ms",
            "% of samples at or below",
            &dist,
            SeriesLabelPosition::LowerRight,
        )?;
        files.push("latency.svg".into());
    }
    let mut time: Vec<Series> = Vec::new();
    for r in reports {
        let pts = |f: &dyn Fn(&crate::report::Sample) -> f64| {
            r.timeseries
                .iter()
                .map(|s| (s.t_s, f(s)))
                .collect::<Vec<_>>()
        };
        time.push((
            format!("{} server CPU %", r.server.name),
            pts(&|s| s.server_cpu_pct),
        ));
        time.push((
            format!("{} generator CPU %", r.server.name),
            pts(&|s| s.generator_cpu_pct),
        ));
    }
    lines(
        &dir.join("cpu_over_time.svg"),
        "CPU over time",
        "seconds",
        "% of one core",
        &time,
        SeriesLabelPosition::UpperLeft,
    )?;
    files.push("cpu_over_time.svg".into());
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Sample;
    use crate::report::tests::sample_report;

    #[test]
    fn writes_well_formed_svgs_for_both_servers() {
        let dir = std::env::temp_dir().join(format!("camstream-bench-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let mut a = sample_report("camstream");
        let mut b = sample_report("nginx-rtmp");
        for (i, r) in [&mut a, &mut b].into_iter().enumerate() {
            r.timeseries = (1..=10u32)
                .map(|t| Sample {
                    t_s: f64::from(t),
                    cameras: u64::from(t) * 10,
                    server_cpu_pct: f64::from(t) * (i as f64 + 1.0),
                    server_rss_mb: 20.0 + f64::from(t),
                    ..Sample::default()
                })
                .collect();
            r.distributions.insert(
                "HLS ingest → available".into(),
                vec![(100.0, 5), (200.0, 15)],
            );
        }
        let files = all(&dir, &[&a, &b]).expect("plots");
        assert_eq!(
            files,
            vec![
                "cpu_vs_cameras.svg",
                "rss_vs_cameras.svg",
                "latency.svg",
                "cpu_over_time.svg"
            ]
        );
        for f in &files {
            let svg = std::fs::read_to_string(dir.join(f)).expect("written");
            assert!(
                svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
                "{f}"
            );
            assert!(
                svg.contains("nginx-rtmp") && svg.contains("camstream"),
                "{f} has both legends"
            );
            assert!(
                svg.contains("<polyline") || svg.contains("<path"),
                "{f} has lines"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
