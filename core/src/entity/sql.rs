//! Statements built at run time from an entity's declaration: SQL text with
//! bound parameters, written once for both backends (diesel writes each
//! backend's placeholders). Values are always bound, never
//! spliced into the text; only names from a declaration (tables, columns)
//! and fixed keywords are.

use chrono::NaiveDateTime;
use diesel::QueryResult;
use diesel::QueryableByName;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Bool, Double, HasSqlType, Nullable, Text, Timestamp, Untyped};
use diesel::sqlite::Sqlite;
use diesel_async::RunQueryDsl;

use crate::db::Conn;
use crate::error::Result;

/// A value bound to a statement (None: SQL NULL of that type).
#[derive(Clone, Debug, PartialEq)]
pub enum Bind {
    /// Text.
    Text(Option<String>),
    /// 64-bit integer.
    Int(Option<i64>),
    /// Floating point.
    Float(Option<f64>),
    /// Boolean.
    Bool(Option<bool>),
    /// Timestamp (UTC).
    Time(Option<NaiveDateTime>),
}

impl From<&str> for Bind {
    fn from(s: &str) -> Self {
        Bind::Text(Some(s.to_owned()))
    }
}

impl From<String> for Bind {
    fn from(s: String) -> Self {
        Bind::Text(Some(s))
    }
}

impl From<i64> for Bind {
    fn from(v: i64) -> Self {
        Bind::Int(Some(v))
    }
}

impl From<NaiveDateTime> for Bind {
    fn from(v: NaiveDateTime) -> Self {
        Bind::Time(Some(v))
    }
}

#[derive(Clone, Debug)]
enum Part {
    Sql(String),
    Param(Bind),
}

/// SQL text with parameters.
#[derive(Clone, Debug, Default)]
pub struct Sql {
    parts: Vec<Part>,
    /// Planned for its values on every run (see [`Sql::plan_each_time`]).
    plan_each_time: bool,
}

impl Sql {
    /// A statement starting with `text`.
    pub fn new(text: impl Into<String>) -> Sql {
        Sql {
            parts: vec![Part::Sql(text.into())],
            plan_each_time: false,
        }
    }

    /// Keeps the statement out of the prepared-statement cache, so
    /// PostgreSQL plans it for its values on every run. For conditions whose
    /// selectivity depends on the value (a name prefix, a date range): after
    /// a few runs of a cached statement PostgreSQL may settle on a generic
    /// plan, which for `name >= $1 AND name < $2 … ORDER BY name LIMIT 20`
    /// reads and sorts every match (24 ms for 4,500 accounts) instead of
    /// walking the name index for 20 rows (0.1 ms).
    pub fn plan_each_time(&mut self) -> &mut Self {
        self.plan_each_time = true;
        self
    }

    /// Whether [`Sql::plan_each_time`] applies.
    pub fn planned_each_time(&self) -> bool {
        self.plan_each_time
    }

    /// Appends SQL text (names and keywords only: values go through [`Sql::bind`]).
    pub fn push(&mut self, text: &str) -> &mut Self {
        match self.parts.last_mut() {
            Some(Part::Sql(s)) => s.push_str(text),
            _ => self.parts.push(Part::Sql(text.to_owned())),
        }
        self
    }

    /// Appends a parameter.
    pub fn bind(&mut self, value: impl Into<Bind>) -> &mut Self {
        self.parts.push(Part::Param(value.into()));
        self
    }

    /// Appends `(?, ?, …)` for `values`; `(NULL)` when empty (matches nothing).
    pub fn bind_list(&mut self, values: impl IntoIterator<Item = Bind>) -> &mut Self {
        self.push("(");
        let mut any = false;
        for v in values {
            if any {
                self.push(", ");
            }
            self.bind(v);
            any = true;
        }
        if !any {
            self.push("NULL");
        }
        self.push(")")
    }

    /// Appends another statement piece with its parameters.
    pub fn append(&mut self, other: &Sql) -> &mut Self {
        self.plan_each_time |= other.plan_each_time;
        for p in &other.parts {
            match p {
                Part::Sql(s) => {
                    self.push(s);
                }
                Part::Param(b) => {
                    self.bind(b.clone());
                }
            }
        }
        self
    }

    /// True when nothing but empty text was added.
    pub fn is_empty(&self) -> bool {
        self.parts
            .iter()
            .all(|p| matches!(p, Part::Sql(s) if s.is_empty()))
    }

    /// Runs the statement and loads its rows by column name.
    pub async fn load<R>(&self, conn: &mut Conn<'_>) -> Result<Vec<R>>
    where
        R: QueryableByName<Pg> + QueryableByName<Sqlite> + Send + 'static,
    {
        Ok(match conn {
            Conn::Pg(c) => self.clone().load::<R>(&mut **c).await?,
            Conn::Sqlite(c) => self.clone().load::<R>(&mut **c).await?,
        })
    }

    /// Runs the statement; returns the rows it changed.
    pub async fn execute(&self, conn: &mut Conn<'_>) -> Result<usize> {
        Ok(match conn {
            Conn::Pg(c) => self.clone().execute(&mut **c).await?,
            Conn::Sqlite(c) => self.clone().execute(&mut **c).await?,
        })
    }

    /// Runs a `SELECT COUNT(*) AS n …` statement.
    pub async fn count(&self, conn: &mut Conn<'_>) -> Result<i64> {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let rows: Vec<N> = self.load::<N>(conn).await?;
        Ok(rows.into_iter().next().map_or(0, |r| r.n))
    }
}

// A statement is its own diesel query: the text goes out as written, the
// values as bind parameters, and the backend's statement cache keeps the
// prepared statement by its text (diesel's `sql_query` opts out of that
// cache, which would cost PostgreSQL a prepare round trip per statement).
impl QueryId for Sql {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Sql {
    type SqlType = Untyped;
}

impl<DB> QueryFragment<DB> for Sql
where
    DB: diesel::backend::Backend
        + HasSqlType<Text>
        + HasSqlType<BigInt>
        + HasSqlType<Double>
        + HasSqlType<Bool>
        + HasSqlType<Timestamp>,
    Option<String>: ToSql<Nullable<Text>, DB>,
    Option<i64>: ToSql<Nullable<BigInt>, DB>,
    Option<f64>: ToSql<Nullable<Double>, DB>,
    Option<bool>: ToSql<Nullable<Bool>, DB>,
    Option<NaiveDateTime>: ToSql<Nullable<Timestamp>, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        if self.plan_each_time {
            out.unsafe_to_cache_prepared();
        }
        for p in &self.parts {
            match p {
                Part::Sql(s) => out.push_sql(s),
                Part::Param(Bind::Text(v)) => out.push_bind_param::<Nullable<Text>, _>(v)?,
                Part::Param(Bind::Int(v)) => out.push_bind_param::<Nullable<BigInt>, _>(v)?,
                Part::Param(Bind::Float(v)) => out.push_bind_param::<Nullable<Double>, _>(v)?,
                Part::Param(Bind::Bool(v)) => out.push_bind_param::<Nullable<Bool>, _>(v)?,
                Part::Param(Bind::Time(v)) => out.push_bind_param::<Nullable<Timestamp>, _>(v)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text<DB>(s: &Sql) -> String
    where
        DB: diesel::backend::Backend + Default,
        DB::QueryBuilder: Default,
        Sql: QueryFragment<DB>,
    {
        diesel::debug_query::<DB, _>(s).to_string()
    }

    #[test]
    fn values_are_bound_never_spliced() {
        let mut s = Sql::new("SELECT * FROM t WHERE a = ");
        s.bind("x'; DROP TABLE t")
            .push(" AND b IN ")
            .bind_list([Bind::from(1), Bind::from(2)]);
        let pg = text::<Pg>(&s);
        assert!(
            pg.starts_with("SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)"),
            "{pg}"
        );
        let lite = text::<Sqlite>(&s);
        assert!(
            lite.starts_with("SELECT * FROM t WHERE a = ? AND b IN (?, ?)"),
            "{lite}"
        );
        let mut empty = Sql::new("x IN ");
        empty.bind_list([]);
        assert!(text::<Sqlite>(&empty).starts_with("x IN (NULL)"));
    }
}
