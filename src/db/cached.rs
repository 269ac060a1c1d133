//! Raw SQL whose prepared statement each connection keeps.
//!
//! Diesel never caches the statement of a `sql_query`, since its text could be built anew
//! for every call and fill the cache without bound: each run is parsed and planned afresh,
//! in a round trip of its own before the one that executes it. [`cached_query`] takes only
//! a `&'static str`, so its text is one of a fixed set written in the source, and the
//! connection's statement cache keeps it like any query built with the DSL: the second
//! and later runs on a connection cost one round trip and no parsing.
//!
//! A kept statement's result columns must not change under a running node (PostgreSQL
//! refuses such a statement until the connection closes): name the columns, or select
//! from a function whose columns are its own, never `table.*` (a migration that adds a
//! column would break nodes still serving).
//!
//! The bound values are pushed where their placeholders stand (`$1`, `$2`, ... outside
//! quoted text), each as a parameter of its own, so the text sent is the same on every
//! call and a placeholder may appear more than once.

use std::marker::PhantomData;

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::Error;
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};

/// `sql` (placeholders `$1`, `$2`, ...) as a query whose prepared statement is cached; bind
/// values with [`CachedQuery::bind`] in placeholder order, as with `diesel::sql_query`.
pub fn cached_query(sql: &'static str) -> CachedQuery<'static> {
    CachedQuery { sql, binds: Vec::new() }
}

#[must_use = "queries run only when loaded or executed"]
pub struct CachedQuery<'f> {
    sql: &'static str,
    binds: Vec<Box<dyn QueryFragment<Pg> + Send + 'f>>,
}

impl<'f> CachedQuery<'f> {
    /// Binds the value of the next placeholder (`$1` first).
    pub fn bind<ST, V>(mut self, value: V) -> Self
    where
        Pg: HasSqlType<ST>,
        V: ToSql<ST, Pg> + Send + 'f,
        ST: 'f,
    {
        self.binds.push(Box::new(Bound::<ST, V> { value, sql_type: PhantomData }));
        self
    }
}

struct Bound<ST, V> {
    value: V,
    sql_type: PhantomData<fn() -> ST>,
}

impl<ST, V> QueryFragment<Pg> for Bound<ST, V>
where
    Pg: HasSqlType<ST>,
    V: ToSql<ST, Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<ST, V>(&self.value)
    }
}

impl QueryFragment<Pg> for CachedQuery<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let mut used = vec![false; self.binds.len()];
        for piece in pieces(self.sql) {
            match piece {
                Piece::Text(text) => out.push_sql(text),
                Piece::Placeholder(number) => {
                    let index = number.checked_sub(1).filter(|i| *i < self.binds.len()).ok_or_else(|| {
                        Error::QueryBuilderError(format!("placeholder ${number} has no bound value").into())
                    })?;
                    used[index] = true;
                    self.binds[index].walk_ast(out.reborrow())?;
                }
            }
        }
        match used.iter().position(|u| !u) {
            Some(unused) => {
                Err(Error::QueryBuilderError(format!("value {} is bound to no placeholder", unused + 1).into()))
            }
            None => Ok(()),
        }
    }
}

impl QueryId for CachedQuery<'_> {
    type QueryId = ();
    // Cached by its text and bound types, as any query without a type of its own.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for CachedQuery<'_> {
    type SqlType = Untyped;
}

#[derive(Debug, PartialEq, Eq)]
enum Piece<'s> {
    Text(&'s str),
    Placeholder(usize),
}

/// `sql` split into text and placeholders; a `$` inside a quoted string or identifier,
/// or not followed by a digit (`$$`), is text.
fn pieces(sql: &str) -> Vec<Piece<'_>> {
    let bytes = sql.as_bytes();
    let mut pieces = Vec::new();
    let mut quote: Option<u8> = None;
    let (mut start, mut at) = (0, 0);
    while at < bytes.len() {
        let byte = bytes[at];
        match quote {
            Some(open) if byte == open => quote = None,
            Some(_) => {}
            None if byte == b'\'' || byte == b'"' => quote = Some(byte),
            None if byte == b'$' && bytes.get(at + 1).is_some_and(u8::is_ascii_digit) => {
                let digits = bytes[at + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
                let number = sql[at + 1..at + 1 + digits].parse().unwrap_or(0);
                if start < at {
                    pieces.push(Piece::Text(&sql[start..at]));
                }
                pieces.push(Piece::Placeholder(number));
                at += 1 + digits;
                start = at;
                continue;
            }
            None => {}
        }
        at += 1;
    }
    if start < bytes.len() {
        pieces.push(Piece::Text(&sql[start..]));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::{Integer, Text};

    #[test]
    fn placeholders_are_found_outside_quoted_text_only() {
        assert_eq!(
            pieces("SELECT $1, '$2', \"a$3\", $$x$$, $10"),
            vec![
                Piece::Text("SELECT "),
                Piece::Placeholder(1),
                Piece::Text(", '$2', \"a$3\", $$x$$, "),
                Piece::Placeholder(10),
            ]
        );
        assert_eq!(pieces("SELECT 1"), vec![Piece::Text("SELECT 1")]);
    }

    fn sql_of(query: &impl QueryFragment<Pg>) -> QueryResult<String> {
        use diesel::query_builder::QueryBuilder;
        let mut builder = diesel::pg::PgQueryBuilder::default();
        query.to_sql(&mut builder, &Pg)?;
        Ok(builder.finish())
    }

    #[test]
    fn values_go_where_their_placeholders_stand_and_every_value_is_used() {
        let query = cached_query("SELECT $2 || $1, $1").bind::<Text, _>("a").bind::<Integer, _>(1);
        assert_eq!(sql_of(&query).unwrap(), "SELECT $1 || $2, $3");
        assert!(diesel::debug_query::<Pg, _>(&query).to_string().ends_with(r#"binds: [1, "a", "a"]"#));
        assert!(QueryFragment::<Pg>::is_safe_to_cache_prepared(&query, &Pg).unwrap());
        let unused = cached_query("SELECT $2").bind::<Text, _>("a").bind::<Text, _>("b");
        assert!(sql_of(&unused).unwrap_err().to_string().contains("value 1 is bound to no placeholder"));
        let unbound = cached_query("SELECT $1, $2").bind::<Text, _>("a");
        assert!(sql_of(&unbound).unwrap_err().to_string().contains("$2 has no bound value"));
    }
}
