//! The typed LogQL syntax tree: the subset logjet evaluates.

use std::time::Duration;

/// A whole query: lines (a log query) or numbers (a metric query).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Log(LogExpr),
    Metric(MetricExpr),
}

/// `{selector} | stage | stage …`
#[derive(Debug, Clone, PartialEq)]
pub struct LogExpr {
    pub selector: Vec<Matcher>,
    pub pipeline: Vec<Stage>,
}

/// `name op "value"` in a stream selector (and in string label filters).
#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Eq,
    Ne,
    Re,
    Nre,
}

/// One stage of a log pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// `|= "x"`, `!= "x"`, `|~ "re"`, `!~ "re"`.
    Line { op: LineOp, value: String },
    /// `| json`
    Json,
    /// `| logfmt`
    Logfmt,
    /// `| status >= 500 and path = "/x"`
    Label(LabelPred),
    /// `| line_format "{{.message}}"`
    LineFormat(String),
    /// `| drop a, b` (typically `__error__`).
    Drop(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOp {
    Contains,
    NotContains,
    Match,
    NotMatch,
}

/// A label filter: comparisons joined by `and` (or `,`) and `or`.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelPred {
    Str(Matcher),
    Num { name: String, op: CmpOp, value: f64 },
    And(Box<LabelPred>, Box<LabelPred>),
    Or(Box<LabelPred>, Box<LabelPred>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
        }
    }
}

/// Range aggregations over a log query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeFn {
    CountOverTime,
    Rate,
    BytesOverTime,
    BytesRate,
}

/// Vector aggregations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Topk,
    Bottomk,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Grouping {
    pub without: bool,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Cmp(CmpOp),
}

/// A query producing numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricExpr {
    /// `count_over_time({…} |= "x" [5m])`
    Range {
        func: RangeFn,
        log: LogExpr,
        range: Duration,
    },
    /// `sum by (level) (…)`, `topk(3, …)`
    Agg {
        op: AggOp,
        /// `k` of topk/bottomk.
        param: Option<f64>,
        grouping: Option<Grouping>,
        inner: Box<MetricExpr>,
    },
    /// `a + b`, `a > 5`, `a > bool 5`
    Binary {
        op: BinOp,
        return_bool: bool,
        lhs: Box<MetricExpr>,
        rhs: Box<MetricExpr>,
    },
    /// A number.
    Scalar(f64),
    /// `vector(1)`
    Vector(f64),
}

impl MetricExpr {
    /// Whether it is a plain number (no series at all).
    pub fn is_scalar(&self) -> bool {
        match self {
            MetricExpr::Scalar(_) => true,
            MetricExpr::Binary { lhs, rhs, .. } => lhs.is_scalar() && rhs.is_scalar(),
            _ => false,
        }
    }

    /// Every range aggregation's log query and range, in evaluation order.
    pub fn range_inputs(&self) -> Vec<(RangeFn, &LogExpr, Duration)> {
        let mut out = Vec::new();
        fn walk<'a>(e: &'a MetricExpr, out: &mut Vec<(RangeFn, &'a LogExpr, Duration)>) {
            match e {
                MetricExpr::Range { func, log, range } => out.push((*func, log, *range)),
                MetricExpr::Agg { inner, .. } => walk(inner, out),
                MetricExpr::Binary { lhs, rhs, .. } => {
                    walk(lhs, out);
                    walk(rhs, out);
                }
                MetricExpr::Scalar(_) | MetricExpr::Vector(_) => {}
            }
        }
        walk(self, &mut out);
        out
    }
}
