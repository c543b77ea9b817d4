//! logjet dashboard: a Dioxus web app, rendered in the browser from WebAssembly.
//!
//! One page with three views (overview, explorer, live tail) sharing one set of filters that
//! lives in the URL. Data comes from `/api/*` (the query API through the dashboard server) and
//! is polled every [`POLL_MS`]; the tail is a Server-Sent Events stream. Whatever the API says
//! ends up on screen: a banner while the query service is down, errors as text in the panel they
//! belong to, a hint on how to send the first log while there is none.

mod api;
mod chart;
mod explorer;
mod filters;
mod overview;
mod tail;
mod util;

use dioxus::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;

use api::{ApiError, ServicesResponse};
use filters::{Filters, View};

/// Every view refreshes at least this often (the issue asks for ≤ 2 s).
pub const POLL_MS: i32 = 2000;

/// Loaded data, the last error, and when it was last fetched.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded<T> {
    pub data: Option<T>,
    pub error: Option<String>,
}

impl<T> Default for Loaded<T> {
    fn default() -> Self {
        Loaded {
            data: None,
            error: None,
        }
    }
}

impl<T: PartialEq + 'static> Loaded<T> {
    /// Applies a result: new data replaces the old, an error is kept beside the stale data.
    pub fn apply(sig: &mut Signal<Loaded<T>>, r: Result<T, ApiError>) {
        let changed = {
            let cur = sig.peek();
            match &r {
                Ok(v) => cur.error.is_some() || cur.data.as_ref() != Some(v),
                Err(e) => cur.error != panel_error(e, cur.data.is_some()),
            }
        };
        if !changed {
            return;
        }
        let mut w = sig.write();
        match r {
            Ok(v) => {
                w.data = Some(v);
                w.error = None;
            }
            Err(e) => w.error = panel_error(&e, w.data.is_some()),
        }
    }
}

/// What a panel says about a failed request. While the query service is down the banner says
/// it once: a panel with data keeps showing it, one without says what it waits for.
pub fn panel_error(e: &ApiError, have_data: bool) -> Option<String> {
    match e {
        _ if e.is_down() && have_data => None,
        _ if e.is_down() => Some("Waiting for the query service…".into()),
        other => Some(other.to_string()),
    }
}

/// Is the query service answering?
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Health {
    /// Why not, while it is not.
    pub down: Option<String>,
    /// When it went down (ms).
    pub down_since: f64,
}

/// Shared state, provided as context.
#[derive(Clone, Copy)]
pub struct Ctx {
    pub filters: Signal<Filters>,
    pub health: Signal<Health>,
    pub services: Signal<Loaded<ServicesResponse>>,
    /// Bumped by "Retry now": polling loops wake up at once.
    pub wake: Signal<u64>,
    /// Last successful answer (ms); read with `peek`, so writing it re-renders nothing.
    pub last_ok: Signal<f64>,
}

impl Ctx {
    /// Records whether a request reached the query service, for the banner.
    pub fn report<T>(&self, r: &Result<T, ApiError>) {
        let mut health = self.health;
        match r {
            Ok(_) => {
                let mut last_ok = self.last_ok;
                last_ok.set(util::now_ms());
                if health.peek().down.is_some() {
                    health.write().down = None;
                }
            }
            Err(e) if e.is_down() => {
                let msg = e.reason();
                if health.peek().down.as_deref() != Some(msg.as_str()) {
                    let mut h = health.write();
                    if h.down.is_none() {
                        h.down_since = util::now_ms();
                    }
                    h.down = Some(msg);
                }
            }
            Err(_) => {}
        }
    }

    /// Changes the filters (and the URL).
    pub fn set_filters(&self, f: Filters) {
        let mut filters = self.filters;
        if *filters.peek() != f {
            filters::push_url(&f);
            filters.set(f);
        }
    }
}

/// Sleeps up to `ms`, waking early when the filters change or "Retry now" is pressed.
pub async fn wait_tick(ctx: Ctx, ms: i32) {
    let filters = ctx.filters.peek().clone();
    let wake = *ctx.wake.peek();
    let mut waited = 0;
    while waited < ms {
        util::sleep_ms(100).await;
        waited += 100;
        if *ctx.wake.peek() != wake || *ctx.filters.peek() != filters {
            return;
        }
    }
}

fn main() {
    dioxus::launch(App);
}

const LEVEL_OPTIONS: [(&str, &str); 7] = [
    ("", "Any level"),
    ("trace", "trace and above"),
    ("debug", "debug and above"),
    ("info", "info and above"),
    ("warn", "warn and above"),
    ("error", "error and above"),
    ("fatal", "fatal"),
];

#[component]
fn App() -> Element {
    let filters = use_signal(|| Filters::from_query(&filters::current_search()));
    let health = use_signal(Health::default);
    let services = use_signal(Loaded::<ServicesResponse>::default);
    let wake = use_signal(|| 0u64);
    let last_ok = use_signal(|| 0.0f64);
    let ctx = use_context_provider(|| Ctx {
        filters,
        health,
        services,
        wake,
        last_ok,
    });

    // Back/Forward: the URL is the source of truth.
    use_hook(move || {
        let mut filters = filters;
        let on_pop = Closure::<dyn FnMut()>::new(move || {
            filters.set(Filters::from_query(&filters::current_search()));
        });
        if let Some(w) = web_sys::window() {
            let _ = w.add_event_listener_with_callback("popstate", on_pop.as_ref().unchecked_ref());
        }
        on_pop.forget();
        // "/" focuses the search box from anywhere (unless typing in a field).
        let on_key =
            Closure::<dyn FnMut(web_sys::KeyboardEvent)>::new(move |e: web_sys::KeyboardEvent| {
                let typing = e
                    .target()
                    .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                    .map(|el| matches!(el.tag_name().as_str(), "INPUT" | "SELECT" | "TEXTAREA"))
                    .unwrap_or(false);
                if e.key() == "/" && !typing {
                    e.prevent_default();
                    let f = filters.peek().clone();
                    if f.view != View::Explore {
                        ctx.set_filters(Filters {
                            view: View::Explore,
                            ..f
                        });
                    }
                    util::focus("search-q");
                }
            });
        if let Some(d) = util::document() {
            let _ = d.add_event_listener_with_callback("keydown", on_key.as_ref().unchecked_ref());
        }
        on_key.forget();
        // The static "loading" placeholder in index.html is ours to remove.
        if let Some(el) = util::document().and_then(|d| d.get_element_by_id("boot")) {
            el.remove();
        }
    });

    // The services list feeds every view (table, service picker, count).
    use_future(move || async move {
        let mut services = services;
        loop {
            let r = api::get::<ServicesResponse>("/api/services").await;
            ctx.report(&r);
            Loaded::apply(&mut services, r);
            wait_tick(ctx, POLL_MS).await;
        }
    });

    let f = filters.read().clone();
    let tabs: Vec<(View, String)> = View::ALL
        .into_iter()
        .map(|v| {
            let href = Filters {
                view: v,
                ..f.clone()
            }
            .to_query();
            (v, if href.is_empty() { "?".into() } else { href })
        })
        .collect();
    rsx! {
        a { class: "skip", href: "#content", "Skip to content" }
        header { class: "top",
            div { class: "brand",
                span { class: "logo", "aria-hidden": "true", "◆" }
                h1 { "logjet" }
            }
            nav { "aria-label": "Views",
                ul {
                    for (v, href) in tabs {
                        li {
                            a {
                                href: "{href}",
                                class: if f.view == v { "tab active" } else { "tab" },
                                "aria-current": if f.view == v { "page" } else { "false" },
                                "data-testid": "tab-{v.as_str()}",
                                onclick: move |e: MouseEvent| {
                                    e.prevent_default();
                                    let cur = ctx.filters.peek().clone();
                                    ctx.set_filters(Filters { view: v, ..cur });
                                },
                                "{v.label()}"
                            }
                        }
                    }
                }
            }
            Status {}
            Account {}
        }
        Banner {}
        FilterBar {}
        main { id: "content", tabindex: "-1",
            match f.view {
                View::Overview => rsx! { overview::Overview {} },
                View::Explore => rsx! { explorer::Explorer {} },
                View::Tail => rsx! { tail::Tail {} },
            }
        }
        footer { class: "foot",
            "logjet · data refreshes every 2 s · press "
            kbd { "/" }
            " to search"
        }
    }
}

/// Who is signed in, and "Sign out" (a plain form POST to the dashboard server, or the
/// authenticating proxy's sign-out link).
#[component]
fn Account() -> Element {
    let me = use_resource(|| api::get::<api::Me>("/auth/me"));
    let Some(Ok(me)) = me.read().clone() else {
        return rsx! {};
    };
    rsx! {
        div { class: "account",
            if let Some(user) = me.user.clone() {
                span { class: "user", "data-testid": "user", "{user}" }
            }
            match (me.signout.clone(), me.signout_post) {
                (Some(url), true) => rsx! {
                    form { method: "post", action: "{url}",
                        button { r#type: "submit", "data-testid": "signout", "Sign out" }
                    }
                },
                (Some(url), false) => rsx! {
                    a { href: "{url}", "data-testid": "signout", "Sign out" }
                },
                _ => rsx! {},
            }
        }
    }
}

/// "Live" or "Offline" next to the tabs.
#[component]
fn Status() -> Element {
    let ctx = use_context::<Ctx>();
    let down = ctx.health.read().down.is_some();
    rsx! {
        p { class: if down { "status off" } else { "status on" }, "data-testid": "status",
            span { class: "dot", "aria-hidden": "true" }
            if down { "Offline" } else { "Live" }
        }
    }
}

/// The query service is down: say so, say when it went down, keep retrying.
#[component]
fn Banner() -> Element {
    let ctx = use_context::<Ctx>();
    let h = ctx.health.read().clone();
    let Some(why) = h.down else {
        return rsx! {};
    };
    let since = util::clock(h.down_since);
    let last_ok = *ctx.last_ok.peek();
    let last = if last_ok > 0.0 {
        format!(" The data shown is from {}.", util::clock(last_ok))
    } else {
        String::new()
    };
    rsx! {
        div { class: "banner", role: "alert", "data-testid": "banner-down",
            strong { "Query service unavailable. " }
            span { "{why} (since {since}).{last} Retrying every 2 seconds; this page recovers by itself." }
            button {
                r#type: "button",
                onclick: move |_| {
                    let mut wake = ctx.wake;
                    wake += 1;
                },
                "Retry now"
            }
        }
    }
}

/// The filters every view shares: text (or regex), service, level, and for the explorer the time
/// range. Selects apply at once; the text applies on Enter. From the overview a search opens the
/// explorer.
#[component]
fn FilterBar() -> Element {
    let ctx = use_context::<Ctx>();
    let f = ctx.filters.read().clone();
    let mut draft = use_signal(|| f.q.clone());
    let mut draft_re = use_signal(|| f.regex);
    // Follow changes that did not come from typing (Back, "Clear filters").
    use_effect(move || {
        let f = ctx.filters.read();
        if *draft.peek() != f.q {
            draft.set(f.q.clone());
        }
        if *draft_re.peek() != f.regex {
            draft_re.set(f.regex);
        }
    });
    let mut names: Vec<String> = ctx
        .services
        .read()
        .data
        .as_ref()
        .map(|s| s.services.iter().map(|s| s.name.clone()).collect())
        .unwrap_or_default();
    names.sort();
    if !f.service.is_empty() && !names.contains(&f.service) {
        names.insert(0, f.service.clone());
    }
    let active = !f.service.is_empty() || !f.level.is_empty() || !f.q.is_empty();
    // Applies the typed text along with whatever else changed.
    let apply = move |change: Box<dyn FnOnce(&mut Filters)>| {
        let mut next = ctx.filters.peek().clone();
        next.q = draft.peek().trim().to_string();
        next.regex = *draft_re.peek();
        change(&mut next);
        ctx.set_filters(next);
    };
    let text_hint = if f.view == View::Tail {
        "Only lines containing this text"
    } else {
        "Text in the message, an id, a word…"
    };
    rsx! {
        form {
            class: "filters",
            role: "search",
            "aria-label": "Filter logs",
            onsubmit: move |e: FormEvent| {
                e.prevent_default();
                apply(Box::new(|f: &mut Filters| {
                    if f.view == View::Overview {
                        f.view = View::Explore;
                    }
                }));
            },
            label { class: "grow",
                span { "Search" }
                input {
                    id: "search-q",
                    "data-testid": "search-q",
                    r#type: "search",
                    name: "q",
                    placeholder: "{text_hint}",
                    autocomplete: "off",
                    spellcheck: "false",
                    value: "{draft}",
                    oninput: move |e: FormEvent| draft.set(e.value()),
                }
            }
            label { class: "check",
                input {
                    r#type: "checkbox",
                    "data-testid": "search-regex",
                    checked: *draft_re.read(),
                    onchange: move |e: FormEvent| draft_re.set(e.checked()),
                }
                span { "Regex" }
            }
            label {
                span { "Service" }
                select {
                    id: "filter-service",
                    "data-testid": "filter-service",
                    value: "{f.service}",
                    onchange: move |e: FormEvent| {
                        let v = e.value();
                        apply(Box::new(move |f: &mut Filters| f.service = v));
                    },
                    option { value: "", selected: f.service.is_empty(), "All services" }
                    for n in names {
                        option { value: "{n}", selected: f.service == n, "{n}" }
                    }
                }
            }
            label {
                span { "Level" }
                select {
                    id: "filter-level",
                    "data-testid": "filter-level",
                    value: "{f.level}",
                    onchange: move |e: FormEvent| {
                        let v = e.value();
                        apply(Box::new(move |f: &mut Filters| f.level = v));
                    },
                    for (v, label) in LEVEL_OPTIONS {
                        option { value: "{v}", selected: f.level == v, "{label}" }
                    }
                }
            }
            if f.view == View::Explore {
                label {
                    span { "Time" }
                    select {
                        id: "filter-range",
                        "data-testid": "filter-range",
                        value: "{f.range}",
                        onchange: move |e: FormEvent| {
                            let v = e.value();
                            apply(Box::new(move |f: &mut Filters| f.range = v));
                        },
                        for (v, label) in filters::RANGES {
                            option { value: "{v}", selected: f.range == v, "{label}" }
                        }
                    }
                }
            }
            button { r#type: "submit", "data-testid": "search-submit", "Search" }
            if active {
                button {
                    r#type: "button",
                    class: "link",
                    "data-testid": "clear-filters",
                    onclick: move |_| {
                        draft.set(String::new());
                        draft_re.set(false);
                        let cur = ctx.filters.peek().clone();
                        ctx.set_filters(Filters {
                            service: String::new(),
                            level: String::new(),
                            q: String::new(),
                            regex: false,
                            ..cur
                        });
                    },
                    "Clear filters"
                }
            }
        }
    }
}

/// A level as a coloured badge (colour and text, never colour alone).
#[component]
pub fn LevelBadge(level: String) -> Element {
    rsx! {
        span { class: "lvl lvl-{level}", "{level}" }
    }
}

/// An error from the API, as text, where the data would be.
#[component]
pub fn ErrorText(error: String) -> Element {
    rsx! {
        p { class: "error", role: "status", "data-testid": "api-error", "{error}" }
    }
}
