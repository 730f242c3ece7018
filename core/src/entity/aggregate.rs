//! Aggregates of an entity: counts and sums per group of declared text
//! columns, over the rows a list with the same [`ListQuery`] would show
//! (row scope, soft delete, conditions, keyword), as one `GROUP BY`
//! statement in the database. Boards, funnels and forecasts are built on it;
//! the module never writes the scope SQL itself.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::access::RowFilter;
use crate::db::Conn;
use crate::error::{Error, Result};

use super::list::{ListQuery, where_sql};
use super::sql::Sql;
use super::{Def, Entity, Kind};

/// Most group keys of one aggregate.
pub const MAX_KEYS: usize = 5;
/// Most measures of one aggregate.
pub const MAX_MEASURES: usize = 4;

/// What is computed per group.
#[derive(Clone, Copy, Debug)]
pub enum Measure {
    /// Rows in the group.
    Count,
    /// Sum of an integer column (NULL counts as 0).
    Sum(&'static str),
    /// Sum of the product of two integer columns (a weighted amount:
    /// amount × probability; the caller divides).
    SumProduct(&'static str, &'static str),
}

/// What rows are grouped by.
#[derive(Clone, Copy, Debug)]
pub enum Key {
    /// A declared text column.
    Column(&'static str),
    /// The first `n` characters of a declared text column: a date bucket
    /// of a `YYYY-MM-DD` column (7: the month `YYYY-MM`, 4: the year).
    Prefix(&'static str, usize),
}

impl Key {
    /// The column the key reads.
    pub fn column(self) -> &'static str {
        match self {
            Key::Column(c) | Key::Prefix(c, _) => c,
        }
    }

    fn expr(self, table: &str) -> String {
        match self {
            Key::Column(c) => format!("{table}.{c}"),
            Key::Prefix(c, n) => format!("SUBSTR({table}.{c}, 1, {n})"),
        }
    }
}

/// One group: its key values (in `group_by` order) and its measures (in
/// `measures` order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Key values; NULL is `None`.
    pub keys: Vec<Option<String>>,
    /// Measures.
    pub values: Vec<i64>,
}

#[derive(QueryableByName)]
struct Raw {
    #[diesel(sql_type = Nullable<Text>)]
    k0: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    k1: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    k2: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    k3: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    k4: Option<String>,
    #[diesel(sql_type = BigInt)]
    m0: i64,
    #[diesel(sql_type = BigInt)]
    m1: i64,
    #[diesel(sql_type = BigInt)]
    m2: i64,
    #[diesel(sql_type = BigInt)]
    m3: i64,
}

/// The statement of [`aggregate`] (without running it).
pub fn aggregate_sql(
    def: &Def,
    scope: &RowFilter,
    q: &ListQuery,
    group_by: &[&'static str],
    measures: &[Measure],
) -> Result<Sql> {
    let keys: Vec<Key> = group_by.iter().map(|c| Key::Column(c)).collect();
    aggregate_by_sql(def, scope, q, &keys, measures)
}

/// The statement of [`aggregate_by`] (without running it).
pub fn aggregate_by_sql(
    def: &Def,
    scope: &RowFilter,
    q: &ListQuery,
    group_by: &[Key],
    measures: &[Measure],
) -> Result<Sql> {
    let t = def.table;
    if group_by.len() > MAX_KEYS || measures.len() > MAX_MEASURES {
        return Err(Error::Internal(format!(
            "an aggregate of {} groups by at most {MAX_KEYS} columns and computes at most {MAX_MEASURES} measures",
            def.type_name
        )));
    }
    let int = |name: &str| -> Result<()> {
        let c = def.column(name)?;
        if c.kind == Kind::Int {
            Ok(())
        } else {
            Err(Error::Internal(format!(
                "{}.{name} is not an integer column",
                def.type_name
            )))
        }
    };
    let mut select = Vec::new();
    for i in 0..MAX_KEYS {
        match group_by.get(i) {
            Some(key) => {
                let col = key.column();
                let c = def.column(col)?;
                if c.kind != Kind::Text {
                    return Err(Error::Internal(format!(
                        "{}.{col} is not a text column",
                        def.type_name
                    )));
                }
                select.push(format!("{} AS k{i}", key.expr(t)));
            }
            None => select.push(format!("CAST(NULL AS TEXT) AS k{i}")),
        }
    }
    for i in 0..MAX_MEASURES {
        let expr = match measures.get(i) {
            Some(Measure::Count) => "COUNT(*)".to_owned(),
            Some(Measure::Sum(col)) => {
                int(col)?;
                format!("SUM({t}.{col})")
            }
            Some(Measure::SumProduct(a, b)) => {
                int(a)?;
                int(b)?;
                format!("SUM({t}.{a} * {t}.{b})")
            }
            None => "0".to_owned(),
        };
        // PostgreSQL sums BIGINT as NUMERIC: the cast brings it back.
        select.push(format!("CAST(COALESCE({expr}, 0) AS BIGINT) AS m{i}"));
    }
    let mut s = Sql::new(format!("SELECT {} FROM {t}", select.join(", ")));
    s.append(&where_sql(def, scope, q)?);
    if !group_by.is_empty() {
        let keys: Vec<String> = group_by.iter().map(|k| k.expr(t)).collect();
        s.push(&format!(" GROUP BY {}", keys.join(", ")));
    }
    Ok(s)
}

/// Counts and sums of the rows of `E` that a list with `q` in `scope` would
/// show, per distinct value of the `group_by` columns (no grouping: one
/// group over all rows, present even when there are none).
pub async fn aggregate<E: Entity>(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    q: &ListQuery,
    group_by: &[&'static str],
    measures: &[Measure],
) -> Result<Vec<Group>> {
    let keys: Vec<Key> = group_by.iter().map(|c| Key::Column(c)).collect();
    aggregate_by::<E>(conn, scope, q, &keys, measures).await
}

/// [`aggregate`] grouped by [`Key`]s: columns or date buckets of them.
pub async fn aggregate_by<E: Entity>(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    q: &ListQuery,
    group_by: &[Key],
    measures: &[Measure],
) -> Result<Vec<Group>> {
    let s = aggregate_by_sql(&E::DEF, scope, q, group_by, measures)?;
    let rows = s.load::<Raw>(conn).await?;
    Ok(rows
        .into_iter()
        .map(|r| Group {
            keys: [r.k0, r.k1, r.k2, r.k3, r.k4]
                .into_iter()
                .take(group_by.len())
                .collect(),
            values: [r.m0, r.m1, r.m2, r.m3]
                .into_iter()
                .take(measures.len())
                .collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::{Column, DELETED, Ops, Scope};

    const DEF: Def = Def {
        type_name: "Deal",
        prefix: "del",
        label: "deal",
        table: "deals",
        topic: "test",
        columns: &[
            Column::new("id", Kind::Text),
            Column::text("stage_id", "stageId").filter(Ops::EQ),
            Column::int("amount", "amount").nullable(),
            Column::int("probability", "probability"),
            Column::int("version", "version"),
            Column::time("created_at", "createdAt"),
            Column::time("updated_at", "updatedAt"),
            Column::text("owner_id", "ownerId"),
            Column::time("deleted_at", "deletedAt").nullable(),
            Column::new("deleted_by", Kind::Text).nullable(),
        ],
        scope: Scope::Owner("owner_id"),
        soft_delete: DELETED,
        custom_fields: false,
    };
    #[test]
    fn groups_are_scoped_summed_and_cast() {
        let s = aggregate_sql(
            &DEF,
            &RowFilter::Own("usr_1".into()),
            &ListQuery::default(),
            &["stage_id"],
            &[
                Measure::Count,
                Measure::Sum("amount"),
                Measure::SumProduct("amount", "probability"),
            ],
        )
        .unwrap();
        let sql = diesel::debug_query::<diesel::pg::Pg, _>(&s).to_string();
        assert!(sql.contains("deals.stage_id AS k0"), "{sql}");
        assert!(
            sql.contains(
                "CAST(COALESCE(SUM(deals.amount * deals.probability), 0) AS BIGINT) AS m2"
            ),
            "{sql}"
        );
        assert!(sql.contains("deals.owner_id = $1"), "{sql}");
        assert!(sql.contains("deals.deleted_at IS NULL"), "{sql}");
        assert!(sql.contains("GROUP BY deals.stage_id --"), "{sql}");
        assert!(
            aggregate_sql(
                &DEF,
                &RowFilter::All,
                &ListQuery::default(),
                &["amount"],
                &[]
            )
            .is_err()
        );
        let s = aggregate_by_sql(
            &DEF,
            &RowFilter::All,
            &ListQuery::default(),
            &[Key::Column("stage_id"), Key::Prefix("stage_id", 7)],
            &[Measure::Count],
        )
        .unwrap();
        let sql = diesel::debug_query::<diesel::pg::Pg, _>(&s).to_string();
        assert!(sql.contains("SUBSTR(deals.stage_id, 1, 7) AS k1"), "{sql}");
        assert!(
            sql.contains("GROUP BY deals.stage_id, SUBSTR(deals.stage_id, 1, 7)"),
            "{sql}"
        );
        assert!(
            aggregate_sql(
                &DEF,
                &RowFilter::All,
                &ListQuery::default(),
                &[],
                &[Measure::Sum("stage_id")]
            )
            .is_err()
        );
    }
}
