//! Small helpers: time, numbers, timers, the DOM.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

pub(crate) fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Sleeps on the browser's event loop.
pub(crate) async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Epoch milliseconds of an RFC 3339 timestamp as the API writes them
/// (`2026-11-26T11:48:35.123456789Z`, or with a `±hh:mm` offset).
pub(crate) fn parse_ts(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut frac_ms = 0.0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        if !digits.is_empty() {
            frac_ms = format!("0.{digits}").parse::<f64>().ok()? * 1000.0;
        }
    }
    let offset_min = match b.get(i) {
        Some(b'Z') | Some(b'z') => 0,
        Some(sign @ (b'+' | b'-')) => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let m = oh * 60 + om;
            if *sign == b'+' { m } else { -m }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(secs as f64 * 1000.0 + frac_ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn date(ms: f64) -> js_sys::Date {
    js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms))
}

/// `14:03:27` in the browser's time zone.
pub(crate) fn clock(ms: f64) -> String {
    let d = date(ms);
    format!(
        "{:02}:{:02}:{:02}",
        d.get_hours(),
        d.get_minutes(),
        d.get_seconds()
    )
}

/// `14:03` in the browser's time zone.
pub(crate) fn hour_minute(ms: f64) -> String {
    let d = date(ms);
    format!("{:02}:{:02}", d.get_hours(), d.get_minutes())
}

/// `14:03:27.123` in the browser's time zone.
pub(crate) fn clock_ms(ms: f64) -> String {
    let d = date(ms);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        d.get_hours(),
        d.get_minutes(),
        d.get_seconds(),
        d.get_milliseconds()
    )
}

/// `2026-11-26 14:03:27` in the browser's time zone.
pub(crate) fn date_time(ms: f64) -> String {
    let d = date(ms);
    format!(
        "{:04}-{:02}-{:02} {}",
        d.get_full_year(),
        d.get_month() + 1,
        d.get_date(),
        clock(ms)
    )
}

/// `3 s ago`, `5 min ago`, `2 h ago`.
pub(crate) fn ago(ms: f64, now: f64) -> String {
    let s = ((now - ms) / 1000.0).max(0.0);
    if s < 60.0 {
        format!("{} s ago", s as u64)
    } else if s < 3600.0 {
        format!("{} min ago", (s / 60.0) as u64)
    } else if s < 86_400.0 {
        format!("{} h ago", (s / 3600.0) as u64)
    } else {
        format!("{} d ago", (s / 86_400.0) as u64)
    }
}

/// `12,345`
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `950`, `1.2k`, `3.4M`, for axis labels.
pub(crate) fn compact(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{}", n.round() as u64)
    }
}

/// `12.5%` (one decimal), the format every error rate is shown in.
pub(crate) fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// `12.3` events/s (one decimal below 100, whole numbers above).
pub(crate) fn rate(r: f64) -> String {
    if r < 100.0 {
        format!("{r:.1}")
    } else {
        thousands(r.round() as u64)
    }
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `v` (at least 1): a round axis maximum.
pub(crate) fn nice_ceiling(v: f64) -> f64 {
    if v <= 1.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

pub(crate) fn document() -> Option<web_sys::Document> {
    web_sys::window()?.document()
}

/// Moves keyboard focus to the element with this id, if it is there.
pub(crate) fn focus(id: &str) {
    if let Some(el) = document()
        .and_then(|d| d.get_element_by_id(id))
        .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
    {
        let _ = el.focus();
    }
}

/// Left edge of an element in viewport coordinates.
pub(crate) fn left_of(id: &str) -> Option<f64> {
    let el = document()?.get_element_by_id(id)?;
    Some(el.get_bounding_client_rect().left())
}

/// Scrolls an element to its end.
pub(crate) fn scroll_to_bottom(id: &str) {
    if let Some(el) = document().and_then(|d| d.get_element_by_id(id)) {
        el.set_scroll_top(el.scroll_height());
    }
}

/// Whether an element is scrolled to (within a few pixels of) its end.
pub(crate) fn at_bottom(id: &str) -> bool {
    document()
        .and_then(|d| d.get_element_by_id(id))
        .map(|el| el.scroll_height() - el.scroll_top() - el.client_height() < 40)
        .unwrap_or(true)
}

/// Host name the page was loaded from, for the "send your first log" hint.
pub(crate) fn page_host() -> String {
    web_sys::window()
        .and_then(|w| w.location().hostname().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
