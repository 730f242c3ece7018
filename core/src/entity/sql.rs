//! Statements built at run time from an entity's declaration: SQL text with
//! bound parameters, written once and rendered for either backend
//! (`$1, $2…` on PostgreSQL, `?` on SQLite). Values are always bound, never
//! spliced into the text; only names from a declaration (tables, columns)
//! and fixed keywords are.

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::query_builder::BoxedSqlQuery;
use diesel::sql_types::{BigInt, Bool, Double, Nullable, Text, Timestamp};
use diesel::sqlite::Sqlite;
use diesel::{QueryableByName, sql_query};
use diesel_async::RunQueryDsl;

use crate::db::{Backend, Conn};
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
}

impl Sql {
    /// A statement starting with `text`.
    pub fn new(text: impl Into<String>) -> Sql {
        Sql {
            parts: vec![Part::Sql(text.into())],
        }
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

    /// The text for `backend`, with its placeholders.
    pub fn text(&self, backend: Backend) -> String {
        let mut out = String::new();
        let mut n = 0;
        for p in &self.parts {
            match p {
                Part::Sql(s) => out.push_str(s),
                Part::Param(_) => {
                    n += 1;
                    match backend {
                        Backend::Postgres => {
                            out.push('$');
                            out.push_str(&n.to_string());
                        }
                        Backend::Sqlite => out.push('?'),
                    }
                }
            }
        }
        out
    }

    fn binds(&self) -> impl Iterator<Item = &Bind> {
        self.parts.iter().filter_map(|p| match p {
            Part::Param(b) => Some(b),
            Part::Sql(_) => None,
        })
    }

    fn boxed<DB>(
        &self,
        backend: Backend,
    ) -> BoxedSqlQuery<'static, DB, diesel::query_builder::SqlQuery>
    where
        DB: diesel::backend::Backend
            + diesel::sql_types::HasSqlType<Text>
            + diesel::sql_types::HasSqlType<BigInt>
            + diesel::sql_types::HasSqlType<Double>
            + diesel::sql_types::HasSqlType<Bool>
            + diesel::sql_types::HasSqlType<Timestamp>,
        Option<String>: diesel::serialize::ToSql<Nullable<Text>, DB>,
        Option<i64>: diesel::serialize::ToSql<Nullable<BigInt>, DB>,
        Option<f64>: diesel::serialize::ToSql<Nullable<Double>, DB>,
        Option<bool>: diesel::serialize::ToSql<Nullable<Bool>, DB>,
        Option<NaiveDateTime>: diesel::serialize::ToSql<Nullable<Timestamp>, DB>,
    {
        let mut q = sql_query(self.text(backend)).into_boxed::<DB>();
        for b in self.binds() {
            q = match b.clone() {
                Bind::Text(v) => q.bind::<Nullable<Text>, _>(v),
                Bind::Int(v) => q.bind::<Nullable<BigInt>, _>(v),
                Bind::Float(v) => q.bind::<Nullable<Double>, _>(v),
                Bind::Bool(v) => q.bind::<Nullable<Bool>, _>(v),
                Bind::Time(v) => q.bind::<Nullable<Timestamp>, _>(v),
            };
        }
        q
    }

    /// Runs the statement and loads its rows by column name.
    pub async fn load<R>(&self, conn: &mut Conn<'_>) -> Result<Vec<R>>
    where
        R: QueryableByName<Pg> + QueryableByName<Sqlite> + Send + 'static,
    {
        Ok(match conn {
            Conn::Pg(c) => {
                self.boxed::<Pg>(Backend::Postgres)
                    .load::<R>(&mut **c)
                    .await?
            }
            Conn::Sqlite(c) => {
                self.boxed::<Sqlite>(Backend::Sqlite)
                    .load::<R>(&mut **c)
                    .await?
            }
        })
    }

    /// Runs the statement; returns the rows it changed.
    pub async fn execute(&self, conn: &mut Conn<'_>) -> Result<usize> {
        Ok(match conn {
            Conn::Pg(c) => {
                self.boxed::<Pg>(Backend::Postgres)
                    .execute(&mut **c)
                    .await?
            }
            Conn::Sqlite(c) => {
                self.boxed::<Sqlite>(Backend::Sqlite)
                    .execute(&mut **c)
                    .await?
            }
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

/// The backend of a connection.
pub fn backend_of(conn: &Conn<'_>) -> Backend {
    match conn {
        Conn::Pg(_) => Backend::Postgres,
        Conn::Sqlite(_) => Backend::Sqlite,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_backend() {
        let mut s = Sql::new("SELECT * FROM t WHERE a = ");
        s.bind("x")
            .push(" AND b IN ")
            .bind_list([Bind::from(1), Bind::from(2)]);
        assert_eq!(
            s.text(Backend::Postgres),
            "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)"
        );
        assert_eq!(
            s.text(Backend::Sqlite),
            "SELECT * FROM t WHERE a = ? AND b IN (?, ?)"
        );
        let mut empty = Sql::new("x IN ");
        empty.bind_list([]);
        assert_eq!(empty.text(Backend::Sqlite), "x IN (NULL)");
    }
}
