//! A Gantt chart of a schedule as a standalone SVG: one row per machine, one bar per operation
//! coloured by job, downtime hatched grey, a time axis. Plain string building, so the crate stays
//! free of drawing dependencies; open the file in any browser.
//!
//! Element counts are part of the contract (tests rely on them): exactly one `<rect` for the
//! background, one per machine row, one per downtime interval visible before the makespan and one
//! per operation. Hovering a bar shows its job, operation, machine and times.

use std::fmt::Write;

use crate::formats::{Format, machine_label};
use crate::problem::{Problem, Schedule};

const LEFT: f64 = 64.0;
const RIGHT: f64 = 24.0;
const CHART: f64 = 1000.0;
const HEADER: f64 = 48.0;
const ROW: f64 = 26.0;
const BAR: f64 = 20.0;
const AXIS: f64 = 32.0;

/// The chart with machines numbered from 0, as in `Problem`.
pub fn svg(problem: &Problem, schedule: &Schedule, title: &str) -> String {
    svg_numbered(problem, schedule, title, Format::Taillard)
}

/// The chart with machines numbered as in a file of `format` (Brandimarte counts from 1), so it
/// matches the rest of the output for that file.
pub fn svg_numbered(problem: &Problem, schedule: &Schedule, title: &str, format: Format) -> String {
    let makespan = schedule.makespan();
    let horizon = makespan.max(1);
    let scale = CHART / horizon as f64;
    let x = |t: i64| LEFT + t as f64 * scale;
    let rows = problem.machines;
    let width = LEFT + CHART + RIGHT;
    let axis_y = HEADER + rows as f64 * ROW;
    let height = axis_y + AXIS;
    let ops: usize = schedule.placements.iter().map(Vec::len).sum();

    let mut s = String::new();
    // Writing to a String cannot fail, hence the ignored results below.
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="12">"#
    );
    s.push_str(
        r##"<defs><pattern id="down" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#888" stroke-width="2"/></pattern></defs>"##,
    );
    s.push('\n');
    s.push_str("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="20" font-size="16" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="38">makespan {makespan} · {} jobs · {rows} machines · {ops} operations</text>"#,
        problem.jobs.len()
    );

    for m in 0..rows {
        let y = HEADER + m as f64 * ROW;
        let fill = if m.is_multiple_of(2) {
            "#f3f3f3"
        } else {
            "#fafafa"
        };
        let _ = writeln!(
            s,
            r#"<rect x="{LEFT}" y="{y}" width="{CHART}" height="{ROW}" fill="{fill}"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.0}" y="{:.1}" text-anchor="end" dominant-baseline="central">M{}</text>"#,
            LEFT - 8.0,
            y + ROW / 2.0,
            machine_label(format, m)
        );
    }

    let step = tick_step(horizon);
    let mut t = 0;
    while t <= horizon {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{HEADER}" x2="{0:.1}" y2="{1:.1}" stroke="#ccc" stroke-width="0.5"/><text x="{0:.1}" y="{2:.1}" text-anchor="middle">{t}</text>"##,
            x(t),
            axis_y + 4.0,
            axis_y + 18.0
        );
        t += step;
    }

    for d in &problem.downtime {
        let (start, end) = (d.start.max(0), d.end.min(horizon));
        if d.machine >= rows || start >= end {
            continue;
        }
        let y = HEADER + d.machine as f64 * ROW + (ROW - BAR) / 2.0;
        let _ = writeln!(
            s,
            r##"<rect x="{:.2}" y="{y}" width="{:.2}" height="{BAR}" fill="url(#down)" stroke="#999"><title>machine {} down from {} to {}</title></rect>"##,
            x(start),
            (end - start) as f64 * scale,
            machine_label(format, d.machine),
            d.start,
            d.end
        );
    }

    for p in schedule.placements.iter().flatten() {
        let y = HEADER + p.machine as f64 * ROW + (ROW - BAR) / 2.0;
        let w = (p.end - p.start) as f64 * scale;
        let _ = writeln!(
            s,
            r##"<rect x="{:.2}" y="{y}" width="{w:.2}" height="{BAR}" fill="{}" stroke="#333" stroke-width="0.5"><title>job {} operation {} on machine {}: {} to {}</title></rect>"##,
            x(p.start),
            colour(p.job),
            p.job,
            p.op,
            machine_label(format, p.machine),
            p.start,
            p.end
        );
        let label = p.job.to_string();
        // About 7 px per digit at font size 11, plus a little margin.
        if w >= 7.0 * label.len() as f64 + 4.0 {
            let _ = writeln!(
                s,
                r#"<text x="{:.2}" y="{:.1}" font-size="11" text-anchor="middle" dominant-baseline="central">{label}</text>"#,
                x(p.start) + w / 2.0,
                y + BAR / 2.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// The smallest 1-2-5 step giving at most 10 intervals, so about 10 round-numbered ticks.
fn tick_step(horizon: i64) -> i64 {
    let mut magnitude = 1i64;
    loop {
        for m in [1, 2, 5] {
            let step = m * magnitude;
            if horizon / step <= 10 {
                return step;
            }
        }
        magnitude *= 10;
    }
}

/// Golden-angle hues: neighbouring job numbers get far-apart colours, and a job keeps its
/// colour from one chart to the next.
fn colour(job: usize) -> String {
    let hue = (job as f64 * 137.508) % 360.0;
    let lightness = if job.is_multiple_of(2) { 62 } else { 72 };
    format!("hsl({hue:.0},65%,{lightness}%)")
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_about_ten() {
        assert_eq!(tick_step(1), 1);
        assert_eq!(tick_step(10), 1);
        assert_eq!(tick_step(11), 2);
        assert_eq!(tick_step(55), 10);
        assert_eq!(tick_step(1231), 200);
    }

    #[test]
    fn chart_has_a_bar_per_operation_and_the_makespan() {
        use crate::problem::{Alternative, Downtime, Job, Operation, Placement};
        let job = |machines: &[usize]| Job {
            release: 0,
            due: None,
            weight: 1.0,
            family: None,
            operations: machines
                .iter()
                .map(|&machine| Operation {
                    alternatives: vec![Alternative {
                        machine,
                        duration: 3,
                    }],
                    frozen: None,
                })
                .collect(),
        };
        let problem = Problem {
            name: String::new(),
            machines: 2,
            jobs: vec![job(&[0, 1]), job(&[1, 0])],
            downtime: vec![
                Downtime {
                    machine: 0,
                    start: 3,
                    end: 4,
                },
                // Past the makespan: not drawn.
                Downtime {
                    machine: 1,
                    start: 50,
                    end: 60,
                },
            ],
            setup: None,
        };
        let place = |job, op, machine, start| Placement {
            job,
            op,
            machine,
            start,
            end: start + 3,
        };
        let schedule = Schedule {
            placements: vec![
                vec![place(0, 0, 0, 0), place(0, 1, 1, 3)],
                vec![place(1, 0, 1, 0), place(1, 1, 0, 4)],
            ],
        };
        let svg = svg_numbered(&problem, &schedule, "a <b> & \"c\"", Format::Brandimarte);
        assert!(svg.starts_with("<svg "));
        assert!(svg.trim_end().ends_with("</svg>"));
        // Background, 2 machine rows, 1 visible downtime, 4 operations.
        assert_eq!(svg.matches("<rect").count(), 1 + 2 + 1 + 4);
        assert_eq!(svg.matches("</rect>").count(), 1 + 4);
        assert!(svg.contains("makespan 7"));
        assert!(svg.contains("a &lt;b&gt; &amp; &quot;c&quot;"));
        assert!(svg.contains(">M1</text>") && svg.contains(">M2</text>"));
        assert!(!svg.contains(">M0</text>"));
        assert_eq!(svg.matches("<svg").count(), 1);
        // Same input, same picture.
        assert_eq!(
            svg,
            svg_numbered(&problem, &schedule, "a <b> & \"c\"", Format::Brandimarte)
        );
        assert!(super::svg(&problem, &schedule, "t").contains(">M0</text>"));
    }

    #[test]
    fn escape_covers_xml_specials() {
        assert_eq!(escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&apos;");
    }
}
