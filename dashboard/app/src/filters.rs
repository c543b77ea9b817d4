//! What the user is looking at, kept in the URL's query string so a view can be shared and
//! survives a reload: `?view=explore&service=api&level=warn&q=timeout&re=1&range=6h&chart=24h`.

use web_sys::UrlSearchParams;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum View {
    #[default]
    Overview,
    Explore,
    Tail,
}

impl View {
    pub const ALL: [View; 3] = [View::Overview, View::Explore, View::Tail];

    pub fn as_str(self) -> &'static str {
        match self {
            View::Overview => "overview",
            View::Explore => "explore",
            View::Tail => "tail",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Explore => "Explore",
            View::Tail => "Live tail",
        }
    }

    fn parse(s: &str) -> View {
        match s {
            "explore" => View::Explore,
            "tail" => View::Tail,
            _ => View::Overview,
        }
    }
}

/// Search window of the explorer.
pub(crate) const RANGES: [(&str, &str); 7] = [
    ("15m", "Last 15 minutes"),
    ("1h", "Last hour"),
    ("6h", "Last 6 hours"),
    ("24h", "Last 24 hours"),
    // Beyond the stream's buffer: the archive answers (as far as retention keeps).
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("", "Everything retained"),
];

/// Window and step of the volume chart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChartRange {
    /// 1 h in 10 s steps.
    #[default]
    Hour,
    /// 24 h in 1 min steps.
    Day,
}

impl ChartRange {
    pub fn as_str(self) -> &'static str {
        match self {
            ChartRange::Hour => "1h",
            ChartRange::Day => "24h",
        }
    }
    pub fn step(self) -> &'static str {
        match self {
            ChartRange::Hour => "10s",
            ChartRange::Day => "1m",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            ChartRange::Hour => "Last hour, 10 s steps",
            ChartRange::Day => "Last 24 hours, 1 min steps",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Filters {
    pub view: View,
    /// One service, or every service when empty.
    pub service: String,
    /// Minimum level, or every level when empty.
    pub level: String,
    /// Text (or, with `regex`, a regular expression) the message must contain.
    pub q: String,
    pub regex: bool,
    /// Explorer window, a duration the API understands (`1h`); empty: everything retained.
    pub range: String,
    pub chart: ChartRange,
}

impl Default for Filters {
    fn default() -> Self {
        Filters {
            view: View::Overview,
            service: String::new(),
            level: String::new(),
            q: String::new(),
            regex: false,
            range: "1h".into(),
            chart: ChartRange::Hour,
        }
    }
}

impl Filters {
    /// From `location.search` (`?a=b`, or empty).
    pub fn from_query(search: &str) -> Filters {
        let mut f = Filters::default();
        let Ok(p) = UrlSearchParams::new_with_str(search) else {
            return f;
        };
        let get = |k: &str| p.get(k).unwrap_or_default();
        f.view = View::parse(&get("view"));
        f.service = get("service");
        let level = get("level");
        if crate::api::Level::ALL.iter().any(|l| l.as_str() == level) {
            f.level = level;
        }
        f.q = get("q");
        f.regex = get("re") == "1";
        if p.has("range") {
            let r = get("range");
            if RANGES.iter().any(|(v, _)| *v == r) {
                f.range = r;
            }
        }
        f.chart = if get("chart") == "24h" {
            ChartRange::Day
        } else {
            ChartRange::Hour
        };
        f
    }

    /// `?view=…&…`, leaving out what is at its default.
    pub fn to_query(&self) -> String {
        let d = Filters::default();
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if self.view != d.view {
            pairs.push(("view", self.view.as_str()));
        }
        pairs.push(("service", &self.service));
        pairs.push(("level", &self.level));
        pairs.push(("q", &self.q));
        if self.regex {
            pairs.push(("re", "1"));
        }
        let range_all = self.range.is_empty();
        if self.range != d.range && !range_all {
            pairs.push(("range", &self.range));
        }
        if self.chart != d.chart {
            pairs.push(("chart", self.chart.as_str()));
        }
        let mut qs = crate::api::query_string(&pairs);
        if range_all {
            // "Everything retained" must survive a reload too.
            qs = if qs.is_empty() {
                "range=".into()
            } else {
                qs + "&range="
            };
        }
        if qs.is_empty() {
            String::new()
        } else {
            format!("?{qs}")
        }
    }

    /// The text box as the API's `(contains, regex)` parameters: the search and the tail share
    /// it. At most one is set, and neither when the box is empty.
    pub fn text_params(&self) -> (Option<String>, Option<String>) {
        let q = crate::api::non_empty(&self.q);
        if self.regex { (None, q) } else { (q, None) }
    }
}

/// The current `location.search`.
pub(crate) fn current_search() -> String {
    web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default()
}

/// Records the filters in the address bar (a new history entry, so Back works).
pub(crate) fn push_url(f: &Filters) {
    let qs = f.to_query();
    if qs == current_search() {
        return;
    }
    if let Some(w) = web_sys::window() {
        let path = w.location().pathname().unwrap_or_else(|_| "/".into());
        let url = format!("{path}{qs}");
        if let Ok(h) = w.history() {
            let _ = h.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
        }
    }
}
