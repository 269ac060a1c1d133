//! Keyset pagination shared by every list. A page is addressed by the sort key of the
//! row it starts after (forward) or before (backward), never by an offset, so rows
//! inserted while a client pages do not shift or repeat what it sees.

use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use diesel::QueryResult;
use diesel::expression::{
    AppearsOnTable, BoxableExpression, Expression, SelectableExpression, ValidGrouping, is_aggregate,
};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{Bool, HasSqlType, Text, Timestamptz, Uuid as SqlUuid};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Largest page any list returns; larger requested limits are capped to it.
pub const MAX_LIMIT: usize = 100;
pub const DEFAULT_LIMIT: usize = 25;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Rows after the key in list order (the `next` link).
    #[serde(rename = "n")]
    Forward,
    /// Rows before the key in list order (the `previous` link).
    #[serde(rename = "p")]
    Backward,
}

/// For a keyset page over a list sorted ascending or descending: the comparison that
/// selects rows past the key, and whether to fetch in ascending order.
pub fn keyset_comparison(list_ascending: bool, direction: Direction) -> (&'static str, bool) {
    match (list_ascending, direction) {
        (true, Direction::Forward) => (">", true),
        (false, Direction::Forward) => ("<", false),
        (true, Direction::Backward) => ("<", false),
        (false, Direction::Backward) => (">", true),
    }
}

/// The condition selecting rows past a keyset position over a (timestamp, id) order:
/// `(<time column>, <id column>) <op> (at, id)`. A row comparison, so PostgreSQL can walk
/// the (firm_id, time, id) index. `columns` is text from the caller's code, never input.
pub fn past_time_key<QS>(
    columns: &'static str,
    op: &'static str,
    at: DateTime<Utc>,
    id: Uuid,
) -> Box<dyn BoxableExpression<QS, Pg, SqlType = Bool>> {
    Box::new(PastKey::<Timestamptz, _> { columns, op, value: at, id, sql_type: PhantomData })
}

/// As [`past_time_key`], for a (text, id) order such as a lower-cased name.
pub fn past_text_key<QS>(
    columns: &'static str,
    op: &'static str,
    text: String,
    id: Uuid,
) -> Box<dyn BoxableExpression<QS, Pg, SqlType = Bool>> {
    Box::new(PastKey::<Text, _> { columns, op, value: text, id, sql_type: PhantomData })
}

/// `(<columns>) <op> (value, id)`. Written out here rather than with `diesel::dsl::sql`,
/// whose literal text makes diesel refuse to keep the page's prepared statement: every
/// page after the first would be parsed and planned again.
struct PastKey<ST, V> {
    columns: &'static str,
    op: &'static str,
    value: V,
    id: Uuid,
    sql_type: PhantomData<fn() -> ST>,
}

impl<ST, V> Expression for PastKey<ST, V> {
    type SqlType = Bool;
}

impl<ST, V> QueryFragment<Pg> for PastKey<ST, V>
where
    Pg: HasSqlType<ST>,
    V: ToSql<ST, Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("(");
        out.push_sql(self.columns);
        out.push_sql(") ");
        out.push_sql(self.op);
        out.push_sql(" (");
        out.push_bind_param::<ST, V>(&self.value)?;
        out.push_sql(", ");
        out.push_bind_param::<SqlUuid, Uuid>(&self.id)?;
        out.push_sql(")");
        Ok(())
    }
}

impl<ST, V> QueryId for PastKey<ST, V> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<QS, ST, V> SelectableExpression<QS> for PastKey<ST, V> {}

impl<QS, ST, V> AppearsOnTable<QS> for PastKey<ST, V> {}

impl<ST, V, GB> ValidGrouping<GB> for PastKey<ST, V> {
    type IsAggregate = is_aggregate::Never;
}

/// A position in a list ordered by creation time, then id (leads, prospects, proposals,
/// conversations, invoices).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CreatedKey {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

/// Escapes `%`, `_` and `\` so user text matches literally inside a LIKE pattern.
pub fn like_contains(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

#[derive(Debug, Clone, PartialEq)]
pub struct PageSpec<K> {
    pub limit: usize,
    pub position: Option<(Direction, K)>,
}

impl<K> PageSpec<K> {
    pub fn first(limit: usize) -> Self {
        Self { limit: limit.clamp(1, MAX_LIMIT), position: None }
    }

    /// Rows a query should fetch: one more than the page, to learn whether more exist.
    pub fn fetch_limit(&self) -> i64 {
        i64::try_from(self.limit + 1).unwrap_or(i64::MAX)
    }

    pub fn is_backward(&self) -> bool {
        matches!(self.position, Some((Direction::Backward, _)))
    }
}

#[derive(Debug, Clone)]
pub struct Page<T, K> {
    pub items: Vec<T>,
    /// Key to continue forward from, when more rows follow this page.
    pub next: Option<K>,
    /// Key to go back from, when rows precede this page.
    pub previous: Option<K>,
}

impl<T, K> Page<T, K> {
    /// Builds a page from rows fetched with `spec.fetch_limit()`: in list order for a
    /// forward (or first) page, in reverse list order for a backward page.
    pub fn from_rows(mut rows: Vec<T>, spec: &PageSpec<K>, key_of: impl Fn(&T) -> K) -> Self {
        let has_more = rows.len() > spec.limit;
        rows.truncate(spec.limit);
        if spec.is_backward() {
            rows.reverse();
        }
        let first_key = rows.first().map(&key_of);
        let last_key = rows.last().map(&key_of);
        let (next, previous) = match spec.position {
            None => (if has_more { last_key } else { None }, None),
            Some((Direction::Forward, _)) => (if has_more { last_key } else { None }, first_key),
            Some((Direction::Backward, _)) => (last_key, if has_more { first_key } else { None }),
        };
        Self { items: rows, next, previous }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_page_has_next_only_when_more_rows_exist() {
        let spec = PageSpec::<i32>::first(2);
        let page = Page::from_rows(vec![9, 8, 7], &spec, |v| *v);
        assert_eq!(page.items, vec![9, 8]);
        assert_eq!(page.next, Some(8));
        assert_eq!(page.previous, None);

        let page = Page::from_rows(vec![9, 8], &spec, |v| *v);
        assert_eq!(page.next, None);
    }

    #[test]
    fn backward_page_is_returned_in_list_order() {
        let spec = PageSpec { limit: 2, position: Some((Direction::Backward, 6)) };
        // Fetched ascending (reverse list order) from just before 6: 7, 8, 9.
        let page = Page::from_rows(vec![7, 8, 9], &spec, |v| *v);
        assert_eq!(page.items, vec![8, 7]);
        assert_eq!(page.next, Some(7));
        assert_eq!(page.previous, Some(8));
    }

    #[test]
    fn like_patterns_match_literally() {
        assert_eq!(like_contains("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn limit_is_capped() {
        assert_eq!(PageSpec::<i32>::first(10_000).limit, MAX_LIMIT);
        assert_eq!(PageSpec::<i32>::first(0).limit, 1);
    }
}
