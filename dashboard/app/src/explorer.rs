//! The log explorer: search results, newest first, with expandable fields, "load more" by
//! cursor, live refresh of the first page, and keyboard navigation (↑/↓ or j/k, Enter).

use std::collections::HashSet;

use dioxus::prelude::*;

use crate::api::{self, FieldValue, LogEvent, QueryRequest, QueryResponse, event_key, non_empty};
use crate::filters::Filters;
use crate::util::{self, thousands};
use crate::{Ctx, ErrorText, POLL_MS, wait_tick};

/// Events per page.
const PAGE: usize = 100;

fn request(f: &Filters, cursor: Option<&str>) -> QueryRequest {
    let (contains, regex) = f.text_params();
    QueryRequest {
        service: non_empty(&f.service),
        min_level: non_empty(&f.level),
        since: non_empty(&f.range),
        contains,
        regex,
        limit: Some(PAGE),
        cursor: cursor.and_then(non_empty),
        ..QueryRequest::default()
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Page {
    /// The filters these results are for (`Filters::to_query` without the view).
    key: String,
    events: Vec<LogEvent>,
    next_cursor: Option<String>,
    scanned: u64,
    truncated: bool,
    /// The tiers that answered (`redis`, `stream`, `archive`), every page loaded so far.
    source: String,
    /// What the answer may lack (a segment skipped, `since` before retention).
    warnings: Vec<String>,
    /// More pages were loaded: live refresh only adds new events on top.
    extended: bool,
}

/// The tiers of two pages, each named once, in tier order (`redis+stream` and `archive` give
/// `redis+stream+archive`).
fn merge_sources(a: &str, b: &str) -> String {
    ["redis", "stream", "archive"]
        .into_iter()
        .filter(|t| a.split('+').chain(b.split('+')).any(|x| x == *t))
        .collect::<Vec<_>>()
        .join("+")
}

fn search_key(f: &Filters) -> String {
    format!("{}|{}|{}|{}|{}", f.service, f.level, f.range, f.regex, f.q)
}

#[component]
pub fn Explorer() -> Element {
    let ctx = use_context::<Ctx>();
    let mut page = use_signal(Page::default);
    let mut error = use_signal(|| None::<String>);
    let mut loaded = use_signal(|| false);
    let mut loading_more = use_signal(|| false);
    let mut expanded = use_signal(HashSet::<String>::new);
    let mut selected = use_signal(|| None::<String>);
    let mut live = use_signal(|| true);

    use_future(move || async move {
        loop {
            let f = ctx.filters.peek().clone();
            let key = search_key(&f);
            let is_new = page.peek().key != key;
            if is_new || *live.peek() {
                let r = api::post::<QueryResponse>("/api/logs/query", &request(&f, None)).await;
                ctx.report(&r);
                if *ctx.filters.peek() == f {
                    match r {
                        Ok(resp) => {
                            let cur = page.peek().clone();
                            let next = if cur.key != key || !cur.extended {
                                Page {
                                    key: key.clone(),
                                    events: resp.events,
                                    next_cursor: resp.next_cursor,
                                    scanned: resp.scanned,
                                    truncated: resp.truncated,
                                    source: resp.source,
                                    warnings: resp.warnings,
                                    extended: false,
                                }
                            } else {
                                // Keep what was loaded; put what is new on top.
                                let seen: HashSet<String> =
                                    cur.events.iter().map(event_key).collect();
                                let newest = cur.events.first().map(|e| e.ts);
                                let mut events: Vec<LogEvent> = resp
                                    .events
                                    .into_iter()
                                    .filter(|e| {
                                        newest.is_none_or(|n| e.ts >= n)
                                            && !seen.contains(&event_key(e))
                                    })
                                    .collect();
                                events.extend(cur.events.iter().cloned());
                                Page {
                                    events,
                                    ..cur.clone()
                                }
                            };
                            if cur.key != key {
                                expanded.write().clear();
                                selected.set(None);
                            }
                            if *page.peek() != next {
                                page.set(next);
                            }
                            if error.peek().is_some() {
                                error.set(None);
                            }
                        }
                        Err(e) => {
                            if page.peek().key != key {
                                page.set(Page {
                                    key: key.clone(),
                                    ..Page::default()
                                });
                            }
                            let have = !page.peek().events.is_empty();
                            let msg = crate::panel_error(&e, have);
                            if *error.peek() != msg {
                                error.set(msg);
                            }
                        }
                    }
                    if !*loaded.peek() {
                        loaded.set(true);
                    }
                }
            }
            wait_tick(ctx, POLL_MS).await;
        }
    });

    let load_more = move |_| {
        let Some(cursor) = page.peek().next_cursor.clone() else {
            return;
        };
        let f = ctx.filters.peek().clone();
        loading_more.set(true);
        spawn(async move {
            let r =
                api::post::<QueryResponse>("/api/logs/query", &request(&f, Some(&cursor))).await;
            ctx.report(&r);
            match r {
                Ok(resp) if page.peek().key == search_key(&f) => {
                    let mut p = page.write();
                    let seen: HashSet<String> = p.events.iter().map(event_key).collect();
                    p.events.extend(
                        resp.events
                            .into_iter()
                            .filter(|e| !seen.contains(&event_key(e))),
                    );
                    p.next_cursor = resp.next_cursor;
                    p.scanned += resp.scanned;
                    p.truncated = resp.truncated;
                    p.source = merge_sources(&p.source, &resp.source);
                    for w in resp.warnings {
                        if !p.warnings.contains(&w) {
                            p.warnings.push(w);
                        }
                    }
                    p.extended = true;
                }
                Ok(_) => {}
                Err(e) => error.set(Some(e.to_string())),
            }
            loading_more.set(false);
        });
    };

    let p = page.read().clone();
    let keys: Vec<String> = p.events.iter().map(event_key).collect();
    let sel_idx = selected
        .read()
        .as_ref()
        .and_then(|k| keys.iter().position(|x| x == k));
    let count = p.events.len();
    let plural = if count == 1 { "event" } else { "events" };
    let now = util::now_ms();

    // ↑/↓ (or k/j) move between rows, Enter or Space opens a row, Home/End jump.
    let onkeydown = {
        let keys = keys.clone();
        move |e: KeyboardEvent| {
            if keys.is_empty() {
                return;
            }
            // No row chosen yet: the first one is (it is the one that takes the focus).
            let cur = selected
                .peek()
                .as_ref()
                .and_then(|k| keys.iter().position(|x| x == k))
                .or(Some(0));
            let last = keys.len() - 1;
            let key = e.key();
            let next = match &key {
                Key::ArrowDown => Some(cur.map_or(0, |i| (i + 1).min(last))),
                Key::ArrowUp => Some(cur.map_or(0, |i| i.saturating_sub(1))),
                Key::Home => Some(0),
                Key::End => Some(last),
                Key::Character(c) if c == "j" => Some(cur.map_or(0, |i| (i + 1).min(last))),
                Key::Character(c) if c == "k" => Some(cur.map_or(0, |i| i.saturating_sub(1))),
                Key::Enter => {
                    if let Some(i) = cur {
                        toggle(&mut expanded, &keys[i]);
                    }
                    None
                }
                Key::Character(c) if c == " " => {
                    if let Some(i) = cur {
                        toggle(&mut expanded, &keys[i]);
                    }
                    None
                }
                _ => return,
            };
            e.prevent_default();
            if let Some(i) = next {
                selected.set(Some(keys[i].clone()));
                util::focus(&format!("row-{i}"));
            }
        }
    };

    rsx! {
        section { class: "panel", "aria-labelledby": "explore-title",
            div { class: "panel-head",
                h2 { id: "explore-title", "Log explorer" }
                label { class: "check",
                    input {
                        r#type: "checkbox",
                        "data-testid": "explore-live",
                        checked: *live.read(),
                        onchange: move |e: FormEvent| live.set(e.checked()),
                    }
                    span { "Live (new events every 2 s)" }
                }
            }
            if let Some(e) = error.read().clone() {
                ErrorText { error: e }
            }
            if !*loaded.read() {
                p { class: "loading", "aria-busy": "true", "Searching…" }
            } else if count == 0 && error.read().is_none() {
                p { class: "muted", "data-testid": "explore-empty",
                    "No events match. Widen the time range, lower the level, or clear the filters."
                }
            } else if count > 0 {
                p { class: "muted small", "data-testid": "explore-meta", "aria-live": "polite",
                    "{thousands(count as u64)} {plural} shown, newest first · scanned {thousands(p.scanned)} · from {p.source}"
                    if p.truncated { " · the scan budget ran out: load more to continue" }
                }
                for w in p.warnings.iter() {
                    p { class: "muted small", "data-testid": "explore-warning", "⚠ {w}" }
                }
                div { class: "scroll",
                    table { class: "events", "data-testid": "events",
                        caption { class: "sr-only", "Matching events. Use the arrow keys to move, Enter to show fields." }
                        thead {
                            tr {
                                th { scope: "col", class: "col-time", "Time" }
                                th { scope: "col", class: "col-level", "Level" }
                                th { scope: "col", class: "col-svc", "Service" }
                                th { scope: "col", "Message" }
                            }
                        }
                        tbody { onkeydown,
                            for (i, ev) in p.events.iter().enumerate() {
                                EventRow {
                                    key: "{keys[i]}",
                                    index: i,
                                    event: ev.clone(),
                                    selected: sel_idx == Some(i) || (sel_idx.is_none() && i == 0),
                                    open: expanded.read().contains(&keys[i]),
                                    now,
                                    on_toggle: {
                                        let k = keys[i].clone();
                                        move |_| {
                                            selected.set(Some(k.clone()));
                                            toggle(&mut expanded, &k);
                                        }
                                    },
                                    on_focus: {
                                        let k = keys[i].clone();
                                        move |_| {
                                            if selected.peek().as_ref() != Some(&k) {
                                                selected.set(Some(k.clone()));
                                            }
                                        }
                                    },
                                }
                            }
                        }
                    }
                }
                if p.next_cursor.is_some() {
                    button {
                        r#type: "button",
                        class: "more",
                        "data-testid": "load-more",
                        disabled: *loading_more.read(),
                        onclick: load_more,
                        if *loading_more.read() { "Loading…" } else { "Load more" }
                    }
                }
            }
        }
    }
}

fn toggle(expanded: &mut Signal<HashSet<String>>, key: &str) {
    let mut set = expanded.write();
    if !set.remove(key) {
        set.insert(key.to_string());
    }
}

#[component]
fn EventRow(
    index: usize,
    event: LogEvent,
    selected: bool,
    open: bool,
    now: f64,
    on_toggle: EventHandler<()>,
    on_focus: EventHandler<()>,
) -> Element {
    let ms = api::event_ms(&event);
    let ts = api::event_ts(&event);
    let time = util::clock_ms(ms);
    let full = util::date_time(ms);
    let ago = util::ago(ms, now);
    let level = event.level;
    let fields: Vec<(String, String)> = event
        .fields
        .iter()
        .map(|(k, v)| {
            // Numbers and booleans as JSON writes them.
            let v = match v {
                FieldValue::Str(s) => s.clone(),
                other => serde_json::to_string(other).unwrap_or_default(),
            };
            (k.clone(), v)
        })
        .collect();
    rsx! {
        tr {
            id: "row-{index}",
            class: if selected { "row sel" } else { "row" },
            tabindex: if selected { "0" } else { "-1" },
            "aria-expanded": if open { "true" } else { "false" },
            "data-testid": "event-row",
            onclick: move |_| on_toggle.call(()),
            onfocus: move |_| on_focus.call(()),
            td { class: "col-time", title: "{full} ({ago})", time { datetime: "{ts}", "{time}" } }
            td { class: "col-level", span { class: "lvl lvl-{level}", "{level}" } }
            td { class: "col-svc", "{event.service}" }
            td { class: "msg", "{event.message}" }
        }
        if open {
            tr { class: "detail", "data-testid": "event-detail",
                td { colspan: "4",
                    dl {
                        dt { "time" }
                        dd { "{ts}" }
                        dt { "service" }
                        dd { "{event.service}" }
                        dt { "level" }
                        dd { "{event.level}" }
                        if let Some(t) = &event.trace_id {
                            dt { "trace_id" }
                            dd { "{t}" }
                        }
                        if let Some(h) = &event.host {
                            dt { "host" }
                            dd { "{h}" }
                        }
                        for (k, v) in fields {
                            dt { "{k}" }
                            dd { "{v}" }
                        }
                    }
                    pre { class: "message-full", "{event.message}" }
                }
            }
        }
    }
}
