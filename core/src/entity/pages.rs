//! One page per value of a column, in one statement: what a parent
//! resolver prefetches for its children (a pipeline board's stage
//! columns), instead of one list per child.

use crate::access::RowFilter;
use crate::db::Conn;
use crate::error::{Error, Result};
use crate::paging::PageQuery;

use super::list::{Cond, ListQuery, order_column, page_sql, where_sql};
use super::sql::Sql;
use super::{Entity, fields_of};

/// The same page of `E` for each of `values` of `column` (the list `q`
/// narrowed to `column = value`), in one statement, and when `with_total`
/// each one's count (-1 when not counted): a board's columns, one page
/// per stage. Keyed by value; every value is there, empty or not. Not
/// for an order by a custom field.
pub async fn list_each<E: Entity>(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    q: &ListQuery,
    page: &PageQuery,
    column: &'static str,
    values: &[String],
    with_total: bool,
) -> Result<std::collections::HashMap<String, (Vec<E::Row>, i64)>> {
    let def = &E::DEF;
    if q.custom_sort.is_some() {
        return Err(Error::Internal(
            "list_each does not order by custom fields".into(),
        ));
    }
    let part = def.column(column)?;
    let order = order_column(def, q)?.name;
    let mut out: std::collections::HashMap<String, (Vec<E::Row>, i64)> = values
        .iter()
        .map(|v| (v.clone(), (Vec::new(), -1)))
        .collect();
    if values.is_empty() {
        return Ok(out);
    }
    // Each value's page is a subquery ordered and limited on its own; the
    // row number over the few rows it returns keeps that order through
    // the UNION ALL.
    let mut all = Sql::new(String::new());
    for (i, v) in values.iter().enumerate() {
        let mut qv = q.clone();
        qv.conds.push(Cond::Eq(part.name, v.as_str().into()));
        let (rows_sql, _, dir) = page_sql(def, scope, &qv, page)?;
        if i > 0 {
            all.push(" UNION ALL ");
        }
        all.push(&format!(
            "SELECT p{i}.*, {i} AS part_, ROW_NUMBER() OVER \
             (ORDER BY p{i}.{order} {dir}, p{i}.id {dir}) AS pos_ FROM ("
        ));
        all.append(&rows_sql);
        all.push(&format!(") AS p{i}"));
    }
    all.push(" ORDER BY part_, pos_");
    for row in all.load::<E::Row>(conn).await? {
        let key = super::text_of(&fields_of::<E>(&row)?, part.name);
        if let Some(e) = out.get_mut(&key) {
            e.0.push(row);
        }
    }
    if with_total {
        let mut qv = q.clone();
        qv.conds.push(Cond::In(
            part.name,
            values.iter().map(|v| v.as_str().into()).collect(),
        ));
        let mut c = Sql::new(format!(
            "SELECT {t}.{col} AS k, COUNT(*) AS n FROM {t}",
            t = def.table,
            col = part.name
        ));
        c.append(&where_sql(def, scope, &qv)?);
        c.push(&format!(" GROUP BY {}.{}", def.table, part.name));
        for (k, n) in c
            .load::<KeyCount>(conn)
            .await?
            .into_iter()
            .map(|r| (r.k, r.n))
        {
            if let Some(e) = out.get_mut(&k) {
                e.1 = n;
            }
        }
        for e in out.values_mut() {
            e.1 = e.1.max(0);
        }
    }
    Ok(out)
}

/// A key and its count.
#[derive(diesel::QueryableByName)]
struct KeyCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    k: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}
