//! The overview's volume chart: events per bucket, stacked by level, with a hover read-out.

use std::collections::BTreeMap;

use dioxus::prelude::*;

use crate::api::{Level, Timeseries};
use crate::filters::ChartRange;
use crate::util::{self, compact, nice_ceiling, parse_ts, thousands};

/// Bottom to top: what goes wrong sits on the baseline, where it is easiest to compare.
const STACK: [&str; 6] = ["fatal", "error", "warn", "info", "debug", "trace"];

struct Bar {
    key: String,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    level: &'static str,
    count: u64,
    ts: String,
}

#[component]
pub fn Chart(series: Timeseries, range: ChartRange) -> Element {
    let mut width = use_signal(|| 800.0f64);
    let mut hover = use_signal(|| None::<usize>);

    let w = (*width.read()).max(240.0);
    let height = 240.0;
    let (ml, mr, mt, mb) = (48.0, 8.0, 10.0, 26.0);
    let pw = w - ml - mr;
    let ph = height - mt - mb;
    let points = &series.points;
    let n = points.len().max(1);
    let bw = pw / n as f64;
    let gap = if bw > 4.0 { 1.0 } else { 0.0 };
    let max = nice_ceiling(points.iter().map(|p| p.total).max().unwrap_or(0) as f64);

    let mut bars = Vec::new();
    let mut totals: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (i, p) in points.iter().enumerate() {
        let mut top = mt + ph;
        for level in STACK {
            let c = p.by_level.get(level).copied().unwrap_or(0);
            if c == 0 {
                continue;
            }
            *totals.entry(level).or_default() += c;
            let h = (c as f64 / max * ph).max(1.0);
            top -= h;
            bars.push(Bar {
                key: format!("{}-{level}", p.ts),
                x: ml + i as f64 * bw,
                y: top,
                w: (bw - gap).max(0.5),
                h,
                level,
                count: c,
                ts: p.ts.clone(),
            });
        }
    }

    // Time labels at round local times, as many as fit.
    let step_s = series.step_secs.max(1);
    let span_s = step_s * n as i64;
    let fits = (pw / 90.0).max(2.0) as i64;
    let every_s = [60, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200]
        .into_iter()
        .find(|e| span_s / e <= fits)
        .unwrap_or(86_400);
    let tz_offset_s = (js_sys::Date::new_0().get_timezone_offset() * 60.0) as i64;
    let mut xticks = Vec::new();
    for (i, p) in points.iter().enumerate() {
        if let Some(ms) = parse_ts(&p.ts) {
            let local = (ms / 1000.0) as i64 - tz_offset_s;
            if local.rem_euclid(every_s) < step_s {
                xticks.push((ml + i as f64 * bw, util::hour_minute(ms)));
            }
        }
    }
    let yticks: Vec<(f64, String)> = [0.0, 0.5, 1.0]
        .into_iter()
        .map(|f| (mt + ph - f * ph, compact(max * f)))
        .collect();

    let hovered = (*hover.read()).filter(|i| *i < points.len());
    let readout = match hovered {
        Some(i) => {
            let p = &points[i];
            let when = parse_ts(&p.ts).map(util::clock).unwrap_or_default();
            let parts: Vec<String> = Level::ALL
                .iter()
                .rev()
                .filter_map(|l| {
                    let c = p.by_level.get(l.as_str()).copied().unwrap_or(0);
                    (c > 0).then(|| format!("{} {l}", thousands(c)))
                })
                .collect();
            let detail = if parts.is_empty() {
                String::new()
            } else {
                format!(": {}", parts.join(", "))
            };
            format!(
                "{when} (+{step_s} s) — {} events{detail}",
                thousands(p.total)
            )
        }
        None => "Point at the chart, or focus it and use ← →, to read the values of one time step."
            .into(),
    };
    let highlight = hovered.map(|i| ml + i as f64 * bw);
    let len = points.len();
    let aria = format!(
        "Stacked bars of events by level, {}. Peak {} events per step.",
        range.label(),
        compact(points.iter().map(|p| p.total).max().unwrap_or(0) as f64)
    );

    rsx! {
        ul { class: "legend", "aria-label": "Events by level in this window",
            for level in STACK.iter().rev() {
                li { "data-testid": "legend-{level}", "data-count": "{totals.get(level).copied().unwrap_or(0)}",
                    span { class: "swatch lvl-bg-{level}", "aria-hidden": "true" }
                    "{level} "
                    strong { "{thousands(totals.get(level).copied().unwrap_or(0))}" }
                }
            }
        }
        div {
            class: "chart",
            onresize: move |e: Event<ResizeData>| {
                if let Ok(size) = e.get_content_box_size()
                    && (size.width - *width.peek()).abs() >= 1.0
                {
                    width.set(size.width);
                }
            },
            svg {
                id: "chart-svg",
                "data-testid": "chart",
                width: "{w}",
                height: "{height}",
                view_box: "0 0 {w} {height}",
                role: "img",
                tabindex: "0",
                "aria-label": "{aria}",
                onmousemove: move |e: MouseEvent| {
                    let left = util::left_of("chart-svg").unwrap_or(0.0);
                    let x = e.client_coordinates().x - left - ml;
                    if x < 0.0 || bw <= 0.0 {
                        hover.set(None);
                        return;
                    }
                    let i = (x / bw).floor() as usize;
                    let v = if i < len { Some(i) } else { None };
                    if *hover.peek() != v {
                        hover.set(v);
                    }
                },
                onmouseleave: move |_| hover.set(None),
                onkeydown: move |e: KeyboardEvent| {
                    if len == 0 {
                        return;
                    }
                    let cur = *hover.peek();
                    let next = match e.key() {
                        Key::ArrowLeft => Some(cur.map_or(len - 1, |i| i.saturating_sub(1))),
                        Key::ArrowRight => Some(cur.map_or(len - 1, |i| (i + 1).min(len - 1))),
                        Key::Home => Some(0),
                        Key::End => Some(len - 1),
                        Key::Escape => None,
                        _ => return,
                    };
                    e.prevent_default();
                    hover.set(next);
                },
                onblur: move |_| hover.set(None),
                // axes
                for (y, label) in yticks {
                    line { class: "grid", x1: "{ml}", x2: "{w - mr}", y1: "{y}", y2: "{y}" }
                    text { class: "axis", x: "{ml - 6.0}", y: "{y + 4.0}", text_anchor: "end", "{label}" }
                }
                for (x, label) in xticks {
                    line { class: "tick", x1: "{x}", x2: "{x}", y1: "{mt + ph}", y2: "{mt + ph + 4.0}" }
                    text { class: "axis", x: "{x}", y: "{height - 8.0}", text_anchor: "middle", "{label}" }
                }
                if let Some(x) = highlight {
                    rect { class: "hover", x: "{x}", y: "{mt}", width: "{bw.max(1.0)}", height: "{ph}" }
                }
                for b in bars {
                    rect {
                        key: "{b.key}",
                        class: "bar lvl-fill-{b.level}",
                        x: "{b.x}",
                        y: "{b.y}",
                        width: "{b.w}",
                        height: "{b.h}",
                        "data-level": "{b.level}",
                        "data-count": "{b.count}",
                        "data-ts": "{b.ts}",
                    }
                }
                line { class: "baseline", x1: "{ml}", x2: "{w - mr}", y1: "{mt + ph}", y2: "{mt + ph}" }
            }
        }
        p { class: "readout", "aria-live": "polite", "data-testid": "chart-readout", "{readout}" }
    }
}
