//! LogQL, the subset logjet speaks: parsed into the typed tree of [`ast`] by the `winnow`
//! grammar in `parser`. [`parse`] is the one entry point; its errors carry the position.

pub mod ast;
mod parser;
#[cfg(test)]
mod tests;

pub use ast::*;

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

/// A query that does not parse, or uses what the subset lacks, with where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("parse error at line {line}, col {col}: {message}")]
pub struct ParseError {
    pub line: usize,
    /// 1-based, in characters.
    pub col: usize,
    /// Byte offset into the query.
    pub offset: usize,
    pub message: String,
}

impl ParseError {
    fn at(query: &str, offset: usize, message: String) -> ParseError {
        let offset = offset.min(query.len());
        let before = query.get(..offset).unwrap_or(query);
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ParseError {
            line,
            col,
            offset,
            message,
        }
    }
}

/// Parses a whole query.
pub fn parse(query: &str) -> Result<Expr, ParseError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(ParseError::at(
            query,
            0,
            format!("the query is longer than {MAX_QUERY_BYTES} bytes"),
        ));
    }
    if query.trim().is_empty() {
        return Err(ParseError::at(query, 0, "the query is empty".into()));
    }
    use winnow::Parser;
    parser::query.parse(query).map_err(|e| {
        let message = e
            .inner()
            .context()
            .next()
            .cloned()
            .unwrap_or_else(|| "syntax error".into());
        ParseError::at(query, e.offset(), message)
    })
}
