//! Live tail: a Server-Sent Events stream (`/api/logs/tail`) with the shared filters.
//!
//! At thousands of lines a second the DOM must not be touched per line: the stream's callbacks
//! only append to a plain ring buffer (the newest [`KEEP`] lines), and a loop copies the buffer
//! into the rendered list at most every [`FLUSH_MS`]. Reconnecting (after an error, or when the
//! server dropped a client that fell behind) is driven from that loop too.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use dioxus::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{EventSource, MessageEvent};

use crate::api::{LogEvent, TailParams, non_empty, params_query};
use crate::filters::Filters;
use crate::util::{self, thousands};
use crate::{Ctx, ErrorText};

/// Lines kept on screen.
pub(crate) const KEEP: usize = 1000;
/// Lines in the DOM while following the newest ones (all [`KEEP`] once the user scrolls up or
/// pauses): what fits on a screen, with room to spare, costs a fraction of the rendering.
pub(crate) const RENDER_FOLLOWING: usize = 200;
/// Longest time between a line arriving and being rendered.
pub(crate) const FLUSH_MS: i32 = 150;

#[derive(Debug, PartialEq)]
pub(crate) struct TailLine {
    seq: u64,
    time: String,
    level: String,
    service: String,
    message: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum State {
    #[default]
    Connecting,
    Streaming,
    Reconnecting,
    Paused,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Connecting => "connecting",
            State::Streaming => "streaming",
            State::Reconnecting => "reconnecting",
            State::Paused => "paused",
        }
    }
}

/// What the stream's callbacks write and the flush loop reads.
#[derive(Default)]
struct Buffer {
    lines: VecDeque<Rc<TailLine>>,
    dirty: bool,
    received: u64,
    seq: u64,
    state: State,
    /// Reopen the stream at this time (ms).
    reopen_at: Option<f64>,
    /// Why the last connection ended, for the user.
    note: Option<String>,
    /// Lines that were not valid events.
    bad: u64,
}

struct Conn {
    source: EventSource,
    _handlers: Vec<Closure<dyn FnMut(MessageEvent)>>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.source.close();
    }
}

fn tail_url(f: &Filters) -> String {
    let (contains, regex) = f.text_params();
    let qs = params_query(&TailParams {
        service: non_empty(&f.service),
        min_level: non_empty(&f.level),
        contains,
        regex,
        ..TailParams::default()
    });
    if qs.is_empty() {
        "/api/logs/tail".into()
    } else {
        format!("/api/logs/tail?{qs}")
    }
}

fn parse_line(data: &str, seq: u64) -> Option<TailLine> {
    let ev: LogEvent = serde_json::from_str(data).ok()?;
    let ms = crate::api::event_ms(&ev);
    Some(TailLine {
        seq,
        time: util::clock_ms(ms),
        level: ev.level.as_str().into(),
        service: ev.service,
        message: ev.message,
    })
}

/// Opens the stream; the connection lives until the returned value is dropped.
fn open(url: &str, buf: &Rc<RefCell<Buffer>>) -> Option<Conn> {
    let source = match EventSource::new(url) {
        Ok(s) => s,
        Err(_) => {
            let mut b = buf.borrow_mut();
            b.state = State::Reconnecting;
            b.note = Some("the browser refused to open the stream".into());
            b.reopen_at = Some(util::now_ms() + 2000.0);
            return None;
        }
    };
    buf.borrow_mut().state = State::Connecting;

    let on_log = {
        let buf = buf.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let Some(data) = e.data().as_string() else {
                return;
            };
            let mut b = buf.borrow_mut();
            b.seq += 1;
            b.received += 1;
            b.state = State::Streaming;
            let seq = b.seq;
            match parse_line(&data, seq) {
                Some(line) => {
                    b.lines.push_back(Rc::new(line));
                    while b.lines.len() > KEEP {
                        b.lines.pop_front();
                    }
                    b.dirty = true;
                }
                None => b.bad += 1,
            }
        })
    };
    let on_dropped = {
        let buf = buf.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |_e: MessageEvent| {
            let mut b = buf.borrow_mut();
            b.state = State::Reconnecting;
            b.note = Some(
                "the tail fell behind and the server dropped it; lines in between were skipped"
                    .into(),
            );
            b.reopen_at = Some(util::now_ms());
        })
    };
    let on_open = {
        let buf = buf.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |_e: MessageEvent| {
            let mut b = buf.borrow_mut();
            b.state = State::Streaming;
            b.dirty = true;
        })
    };
    let on_error = {
        let buf = buf.clone();
        let source = source.clone();
        Closure::<dyn FnMut(web_sys::Event)>::new(move |_e: web_sys::Event| {
            let mut b = buf.borrow_mut();
            b.state = State::Reconnecting;
            b.dirty = true;
            // CLOSED: the browser gave up (an error status, such as 502 while the query service
            // is down); otherwise it retries by itself.
            if source.ready_state() == EventSource::CLOSED && b.reopen_at.is_none() {
                b.note = Some("the stream closed; retrying every 2 seconds".into());
                b.reopen_at = Some(util::now_ms() + 2000.0);
            }
        })
    };
    let _ = source.add_event_listener_with_callback("log", on_log.as_ref().unchecked_ref());
    let _ = source.add_event_listener_with_callback("dropped", on_dropped.as_ref().unchecked_ref());
    let _ = source.add_event_listener_with_callback("open", on_open.as_ref().unchecked_ref());
    source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    Some(Conn {
        source,
        _handlers: vec![on_log, on_dropped, on_open],
        _on_error: on_error,
    })
}

#[component]
pub fn Tail() -> Element {
    let ctx = use_context::<Ctx>();
    let buf = use_hook(|| Rc::new(RefCell::new(Buffer::default())));
    let conn = use_hook(|| Rc::new(RefCell::new(None::<Conn>)));
    let mut lines = use_signal(Vec::<Rc<TailLine>>::new);
    let mut running = use_signal(|| true);
    let mut state = use_signal(State::default);
    let mut note = use_signal(|| None::<String>);
    let mut received = use_signal(|| 0u64);
    let mut per_sec = use_signal(|| 0.0f64);
    let mut following = use_signal(|| true);

    // (Re)open whenever the filters or start/pause change.
    {
        let buf = buf.clone();
        let conn = conn.clone();
        use_effect(move || {
            let f = ctx.filters.read().clone();
            let run = *running.read();
            // Dropping the old connection closes it.
            conn.borrow_mut().take();
            {
                let mut b = buf.borrow_mut();
                b.reopen_at = None;
                b.note = None;
                b.state = if run {
                    State::Connecting
                } else {
                    State::Paused
                };
                b.dirty = true;
            }
            if run {
                *conn.borrow_mut() = open(&tail_url(&f), &buf);
            }
        });
    }
    {
        let conn = conn.clone();
        use_drop(move || {
            conn.borrow_mut().take();
        });
    }

    // The one place the DOM is updated from the stream.
    {
        let buf = buf.clone();
        let conn = conn.clone();
        use_future(move || {
            let buf = buf.clone();
            let conn = conn.clone();
            async move {
                let mut last_count = 0u64;
                let mut last_rate_at = util::now_ms();
                loop {
                    util::sleep_ms(FLUSH_MS).await;
                    let now = util::now_ms();
                    let reopen = {
                        let b = buf.borrow();
                        b.reopen_at.is_some_and(|t| now >= t) && *running.peek()
                    };
                    if reopen {
                        conn.borrow_mut().take();
                        buf.borrow_mut().reopen_at = None;
                        let f = ctx.filters.peek().clone();
                        *conn.borrow_mut() = open(&tail_url(&f), &buf);
                    }
                    let mut b = buf.borrow_mut();
                    if b.dirty {
                        b.dirty = false;
                        lines.set(b.lines.iter().cloned().collect());
                        if *received.peek() != b.received {
                            received.set(b.received);
                        }
                    }
                    if *state.peek() != b.state {
                        state.set(b.state);
                    }
                    if *note.peek() != b.note {
                        note.set(b.note.clone());
                    }
                    if now - last_rate_at >= 1000.0 {
                        let r = (b.received - last_count) as f64 * 1000.0 / (now - last_rate_at);
                        last_count = b.received;
                        last_rate_at = now;
                        if (*per_sec.peek() - r).abs() > 0.01 {
                            per_sec.set(r);
                        }
                    }
                }
            }
        });
    }

    // Newest at the bottom; follow it unless the user scrolled up to read.
    use_effect(move || {
        let _ = lines.read();
        if *following.peek() {
            util::scroll_to_bottom("tail-list");
        }
    });

    let st = if *running.read() {
        *state.read()
    } else {
        State::Paused
    };
    let kept = lines.read().len();
    let all = lines.read().clone();
    let follow_view = *following.read() && *running.read();
    let visible = if follow_view {
        &all[all.len().saturating_sub(RENDER_FOLLOWING)..]
    } else {
        &all[..]
    };
    let shown = visible.len();
    let is_running = *running.read();
    let clear_buf = buf.clone();
    let status = match st {
        State::Connecting => "Connecting…".to_string(),
        State::Streaming => "Streaming".to_string(),
        State::Reconnecting => "Reconnecting…".to_string(),
        State::Paused => "Paused".to_string(),
    };

    rsx! {
        section { class: "panel tail", "aria-labelledby": "tail-title",
            div { class: "panel-head",
                h2 { id: "tail-title", "Live tail" }
                div { class: "controls",
                    button {
                        r#type: "button",
                        class: if is_running { "" } else { "primary" },
                        "data-testid": "tail-toggle",
                        "aria-pressed": if is_running { "false" } else { "true" },
                        onclick: move |_| {
                            let r = !*running.peek();
                            running.set(r);
                        },
                        if is_running { "Pause" } else { "Start" }
                    }
                    button {
                        r#type: "button",
                        "data-testid": "tail-clear",
                        onclick: move |_| {
                            let mut b = clear_buf.borrow_mut();
                            b.lines.clear();
                            b.dirty = true;
                        },
                        "Clear"
                    }
                }
            }
            p { class: "muted small tail-status", "data-testid": "tail-status", "data-kept": "{kept}", "data-state": "{st.as_str()}", "aria-live": "polite",
                span { class: "state state-{st.as_str()}", "{status}" }
                " · {thousands(*received.read())} lines received · {util::rate(*per_sec.read())}/s · {thousands(kept as u64)} kept (at most {thousands(KEEP as u64)})"
            }
            if let Some(n) = note.read().clone() {
                ErrorText { error: n }
            }
            ol {
                id: "tail-list",
                class: "tail-list",
                role: "log",
                "aria-live": "off",
                "data-testid": "tail-list",
                tabindex: "0",
                onscroll: move |_| {
                    let f = util::at_bottom("tail-list");
                    if *following.peek() != f {
                        following.set(f);
                    }
                },
                if shown == 0 {
                    li { class: "muted", "data-testid": "tail-waiting",
                        if is_running { "Waiting for new events that match the filters…" } else { "Paused. Start to see new events." }
                    }
                }
                if follow_view && kept > shown {
                    li { class: "muted more-above", "{thousands((kept - shown) as u64)} older lines kept above: scroll up or pause to see them" }
                }
                for l in visible.iter() {
                    li { key: "{l.seq}", class: "tl",
                        span { class: "t", "{l.time}" }
                        span { class: "lvl lvl-{l.level}", "{l.level}" }
                        span { class: "msg", span { class: "svc", "{l.service}" } " {l.message}" }
                    }
                }
            }
            if !*following.read() && shown > 0 {
                button {
                    r#type: "button",
                    class: "jump",
                    onclick: move |_| {
                        following.set(true);
                        util::scroll_to_bottom("tail-list");
                    },
                    "↓ Jump to newest"
                }
            }
        }
    }
}
