//! Lists of an entity: row scope, soft delete, typed conditions, keyword
//! search, custom field conditions, keyset ordering and `totalCount`, as
//! one statement (and one count when asked for).

use crate::access::RowFilter;
use crate::custom::{CustomCond, CustomSort};
use crate::db::Conn;
use crate::error::{Error, Result};
use crate::paging::{self, Direction, PageQuery};

use super::sql::{Bind, Sql};
use super::{Def, Entity, Kind, Ops, Scope, fields_of};

/// A condition on one declared column.
#[derive(Clone, Debug)]
pub enum Cond {
    /// Equal.
    Eq(&'static str, Bind),
    /// One of.
    In(&'static str, Vec<Bind>),
    /// `from <= column < to` (either end may be open).
    Range(&'static str, Option<Bind>, Option<Bind>),
    /// Starts with (case-sensitive).
    Prefix(&'static str, String),
    /// Contains (case-insensitive).
    Contains(&'static str, String),
    /// A JSON list of strings in the column has exactly this element.
    Has(&'static str, String),
    /// A condition of the module's own (membership in a link table, a
    /// match in a related table), already scoped by it.
    Sql(Sql),
}

/// What a list asks for.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// All must hold.
    pub conds: Vec<Cond>,
    /// Keyword: any searchable column contains it (case-insensitive).
    pub search: Option<String>,
    /// More ways the keyword may match (the module's, e.g. a related
    /// record's name), OR-ed with the searchable columns.
    pub search_also: Vec<Sql>,
    /// The recycle bin instead of live records.
    pub deleted: bool,
    /// Custom field conditions (from [`crate::custom::query_parts`]).
    pub custom: Vec<CustomCond>,
    /// Order by a custom field instead of `order`.
    pub custom_sort: Option<CustomSort>,
    /// Order column (declared `sort`) and direction; ties go by id.
    pub order: Option<(&'static str, Direction)>,
}

/// The `LIKE` pattern of a keyword: lower case, wildcards removed.
pub fn like_pattern(s: &str) -> String {
    format!("%{}%", s.to_lowercase().replace(['\\', '%', '_'], ""))
}

/// The `LIKE` pattern (with `\` as its escape) of one element of a JSON
/// list of strings as serde_json writes it: the quoted, JSON-escaped value.
/// Inside a stored string every `"` is escaped, so the quoted value matches
/// whole elements only. Values are stored normalised (lower-case tags, ids):
/// SQLite's `LIKE` ignores ASCII case, PostgreSQL's does not.
pub fn element_pattern(v: &str) -> String {
    let quoted = serde_json::Value::from(v).to_string();
    let mut p = String::with_capacity(quoted.len() + 4);
    p.push('%');
    for ch in quoted.chars() {
        if matches!(ch, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

/// The row scope of the records of `table` owned through its `owner`
/// column, as a condition (empty for `all`): for a module naming another
/// module's table in a subquery without depending on its declaration.
pub fn owner_scope_sql(table: &'static str, owner: &'static str, filter: &RowFilter) -> Sql {
    let mut def = OWNED;
    def.table = table;
    def.scope = Scope::Owner(owner);
    scope_sql(&def, filter)
}

const OWNED: Def = Def {
    type_name: "",
    prefix: "",
    label: "",
    table: "",
    topic: "",
    columns: &[],
    scope: Scope::Shared,
    soft_delete: None,
    custom_fields: false,
};

/// The row scope of `def` as a condition (empty for `all`).
pub fn scope_sql(def: &Def, filter: &RowFilter) -> Sql {
    scope_cond(def, filter).unwrap_or_default()
}

/// The row scope as a condition, None for every row.
fn scope_cond(def: &Def, filter: &RowFilter) -> Option<Sql> {
    let t = def.table;
    // The rows of `inner` or those whose `column` matches: a routed type's
    // group or assignee (other types ignore these scopes, as before).
    let either = |inner: &RowFilter, column: Option<&str>, extra: &dyn Fn(&mut Sql)| {
        let inner = scope_cond(def, inner);
        let Some(col) = column else {
            return inner;
        };
        let inner = inner?;
        let mut s = Sql::new("((");
        s.append(&inner).push(&format!(") OR {t}.{col}"));
        extra(&mut s);
        s.push(")");
        Some(s)
    };
    let routed = match def.scope {
        Scope::Routed {
            group, assignee, ..
        } => Some((group, assignee)),
        _ => None,
    };
    match filter {
        RowFilter::OrAssigned(inner, me) => {
            return either(inner, routed.map(|r| r.1), &|s: &mut Sql| {
                s.push(" = ").bind(me.as_str());
            });
        }
        RowFilter::OrGroup(inner, teams) => {
            return either(inner, routed.map(|r| r.0), &|s: &mut Sql| {
                s.push(" IN ")
                    .bind_list(teams.iter().map(|t| Bind::from(t.as_str())));
            });
        }
        _ => {}
    }
    let mut s = Sql::default();
    let members = |s: &mut Sql, teams: &[String]| {
        s.push("SELECT id FROM users WHERE team_id IN ")
            .bind_list(teams.iter().map(|t| Bind::from(t.as_str())));
    };
    match (def.scope.ownership(), filter) {
        (Scope::Shared, _) | (_, RowFilter::All) => return None,
        (Scope::Owner(o), RowFilter::Own(uid)) => {
            s.push(&format!("{t}.{o} = ")).bind(uid.as_str());
        }
        (Scope::Owner(o), RowFilter::Team(teams)) => {
            s.push(&format!("{t}.{o} IN ("));
            members(&mut s, teams);
            s.push(")");
        }
        (Scope::OwnerOrQueue { owner: o, team }, RowFilter::Own(uid)) => {
            s.push(&format!("({t}.{o} = "))
                .bind(uid.as_str())
                .push(&format!(
                    " OR ({t}.{o} IS NULL AND {t}.{team} IN (SELECT team_id FROM users WHERE id = "
                ))
                .bind(uid.as_str())
                .push(")))");
        }
        (Scope::OwnerOrQueue { owner: o, team }, RowFilter::Team(teams)) => {
            s.push(&format!("({t}.{o} IN ("));
            members(&mut s, teams);
            s.push(&format!(") OR ({t}.{o} IS NULL AND {t}.{team} IN "))
                .bind_list(teams.iter().map(|t| Bind::from(t.as_str())))
                .push("))");
        }
        (Scope::Through { fk, table, owner }, RowFilter::Own(uid)) => {
            s.push(&format!(
                "{t}.{fk} IN (SELECT id FROM {table} WHERE {owner} = "
            ))
            .bind(uid.as_str())
            .push(")");
        }
        (Scope::Through { fk, table, owner }, RowFilter::Team(teams)) => {
            s.push(&format!(
                "{t}.{fk} IN (SELECT id FROM {table} WHERE {owner} IN ("
            ));
            members(&mut s, teams);
            s.push("))");
        }
        _ => {
            s.push("1 = 0");
        }
    }
    Some(s)
}

/// The SQL condition of [`RowFilter::admits_team`] on a table whose rows
/// belong to the team in `column` (`table.column`): every row for `all`,
/// the rows of the caller's teams for `team`, none otherwise.
pub fn team_scope_sql(filter: &RowFilter, column: &str) -> Sql {
    match filter.owner_scope() {
        RowFilter::All => Sql::new("1 = 1"),
        RowFilter::Team(teams) if !teams.is_empty() => {
            let mut s = Sql::new(format!("{column} IN "));
            s.bind_list(teams.iter().map(|t| Bind::from(t.as_str())));
            s
        }
        _ => Sql::new("1 = 0"),
    }
}

fn check(def: &Def, col: &str, op: Ops) -> Result<&'static super::Column> {
    let c = def.column(col)?;
    if c.ops.has(op) {
        Ok(c)
    } else {
        Err(Error::Internal(format!(
            "{}.{col} is not declared filterable this way",
            def.type_name
        )))
    }
}

/// The WHERE clause of a list (without keyset bounds).
pub fn where_sql(def: &Def, scope: &RowFilter, q: &ListQuery) -> Result<Sql> {
    let t = def.table;
    let mut w = Sql::new(" WHERE 1 = 1");
    let sc = scope_sql(def, scope);
    if !sc.is_empty() {
        w.push(" AND ").append(&sc);
    }
    if let Some(sd) = def.soft_delete {
        w.push(&format!(
            " AND {t}.{} IS {}NULL",
            sd.at,
            if q.deleted { "NOT " } else { "" }
        ));
    } else if q.deleted {
        return Err(Error::invalid(
            "deleted",
            format!("{} has no recycle bin", def.type_name),
        ));
    }
    for cond in &q.conds {
        match cond {
            Cond::Eq(col, v) => {
                check(def, col, Ops::EQ)?;
                w.push(&format!(" AND {t}.{col} = ")).bind(v.clone());
            }
            Cond::In(col, vs) => {
                check(def, col, Ops::IN)?;
                w.push(&format!(" AND {t}.{col} IN "))
                    .bind_list(vs.iter().cloned());
            }
            Cond::Range(col, from, to) => {
                check(def, col, Ops::RANGE)?;
                w.plan_each_time();
                if let Some(v) = from {
                    w.push(&format!(" AND {t}.{col} >= ")).bind(v.clone());
                }
                if let Some(v) = to {
                    w.push(&format!(" AND {t}.{col} < ")).bind(v.clone());
                }
            }
            Cond::Prefix(col, p) => {
                check(def, col, Ops::PREFIX)?;
                // The range lets an index on the column serve the statement;
                // LIKE keeps the match exact.
                let p = p.replace(['\\', '%', '_'], "");
                w.plan_each_time();
                w.push(&format!(" AND {t}.{col} >= "))
                    .bind(p.as_str())
                    .push(&format!(" AND {t}.{col} < "))
                    .bind(format!("{p}\u{10FFFF}"))
                    .push(&format!(" AND {t}.{col} LIKE "))
                    .bind(format!("{p}%"));
            }
            Cond::Contains(col, p) => {
                check(def, col, Ops::CONTAINS)?;
                w.push(&format!(" AND lower({t}.{col}) LIKE "))
                    .bind(like_pattern(p));
            }
            Cond::Has(col, v) => {
                check(def, col, Ops::HAS)?;
                w.push(&format!(" AND {t}.{col} LIKE "))
                    .bind(element_pattern(v))
                    .push(" ESCAPE '\\'");
            }
            Cond::Sql(s) => {
                w.push(" AND (").append(s).push(")");
            }
        }
    }
    if let Some(k) = q.search.as_deref() {
        let p = like_pattern(k);
        w.push(" AND (1 = 0");
        for c in def.columns.iter().filter(|c| c.search) {
            w.push(&format!(" OR lower({t}.{}) LIKE ", c.name))
                .bind(p.as_str());
        }
        for s in &q.search_also {
            w.push(" OR (").append(s).push(")");
        }
        w.push(")");
    }
    for c in &q.custom {
        w.push(" AND ")
            .push(&c.sql)
            .bind(c.value.as_str())
            .push(c.end);
    }
    Ok(w)
}

fn select_list(def: &Def) -> String {
    def.columns
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The sort value of `row` for the list's order (a cursor's first half).
pub fn sort_value<E: Entity>(q: &ListQuery, row: &E::Row) -> Result<String> {
    let m = fields_of::<E>(row)?;
    if let Some(cs) = &q.custom_sort {
        let raw = super::text_of(&m, "custom");
        return Ok(crate::custom::CustomSql::sort_value(&cs.def, &raw));
    }
    let col = order_column(&E::DEF, q)?;
    Ok(match (col.kind, m.get(col.name)) {
        (Kind::Time, Some(v)) => {
            let t: chrono::NaiveDateTime =
                serde_json::from_value(v.clone()).map_err(|e| Error::Internal(e.to_string()))?;
            paging::time_key(t)
        }
        (_, Some(serde_json::Value::String(s))) => s.clone(),
        (_, Some(v)) => v.to_string(),
        (_, None) => String::new(),
    })
}

pub(super) fn order_column(def: &Def, q: &ListQuery) -> Result<&'static super::Column> {
    let name = q.order.map(|(c, _)| c).unwrap_or("id");
    let c = def.column(name)?;
    if c.sort || c.name == "id" {
        Ok(c)
    } else {
        Err(Error::Internal(format!(
            "{}.{name} is not declared sortable",
            def.type_name
        )))
    }
}

fn keyset(
    def: &Def,
    q: &ListQuery,
    w: &mut Sql,
    value: &str,
    id: &str,
    greater: bool,
    field: &str,
) -> Result<()> {
    let t = def.table;
    let cmp = if greater { ">" } else { "<" };
    let (expr, v) = if let Some(cs) = &q.custom_sort {
        let v = if cs.numeric {
            Bind::Float(Some(
                value
                    .parse()
                    .map_err(|_| Error::invalid(field, "not a valid cursor"))?,
            ))
        } else {
            Bind::from(value)
        };
        (format!("({})", cs.expr), v)
    } else {
        let c = order_column(def, q)?;
        let v = match c.kind {
            Kind::Time => Bind::from(paging::parse_time_key(value, field)?),
            Kind::Int => Bind::Int(Some(
                value
                    .parse()
                    .map_err(|_| Error::invalid(field, "not a valid cursor"))?,
            )),
            Kind::Float => Bind::Float(Some(
                value
                    .parse()
                    .map_err(|_| Error::invalid(field, "not a valid cursor"))?,
            )),
            _ => Bind::from(value),
        };
        (format!("{t}.{}", c.name), v)
    };
    w.push(&format!(" AND ({expr} {cmp} "))
        .bind(v.clone())
        .push(&format!(" OR ({expr} = "))
        .bind(v)
        .push(&format!(" AND {t}.id {cmp} "))
        .bind(id)
        .push("))");
    Ok(())
}

/// The statement of one page of `E` in `scope` (rows ordered and limited
/// to `page.limit + 1`), the WHERE part it starts with, and the ORDER BY
/// direction (`ASC`/`DESC`).
pub(super) fn page_sql(
    def: &Def,
    scope: &RowFilter,
    q: &ListQuery,
    page: &PageQuery,
) -> Result<(Sql, Sql, &'static str)> {
    let t = def.table;
    let w = where_sql(def, scope, q)?;
    let asc = q.order.map(|(_, d)| d).unwrap_or(Direction::Asc) == Direction::Asc;
    let mut rows_sql = Sql::new(format!("SELECT {} FROM {t}", select_list(def)));
    rows_sql.append(&w);
    for (cursor, greater, field) in [(&page.after, asc, "after"), (&page.before, !asc, "before")] {
        if let Some(c) = cursor {
            let (value, id) = paging::unpair(c, field)?;
            keyset(def, q, &mut rows_sql, &value, &id, greater, field)?;
        }
    }
    let dir = if asc != page.backwards { "ASC" } else { "DESC" };
    let expr = match &q.custom_sort {
        Some(cs) => format!("({})", cs.expr),
        None => format!("{t}.{}", order_column(def, q)?.name),
    };
    rows_sql
        .push(&format!(" ORDER BY {expr} {dir}, {t}.id {dir} LIMIT "))
        .bind(page.limit + 1);
    Ok((rows_sql, w, dir))
}

/// A page of `E` in `scope` and, when `with_total`, how many match in all
/// (-1 when not counted).
pub async fn list<E: Entity>(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    q: &ListQuery,
    page: &PageQuery,
    with_total: bool,
) -> Result<(Vec<E::Row>, i64)> {
    let def = &E::DEF;
    let (rows_sql, w, _) = page_sql(def, scope, q, page)?;
    let rows = rows_sql.load::<E::Row>(conn).await?;
    let total = if with_total {
        let mut c = Sql::new(format!("SELECT COUNT(*) AS n FROM {}", def.table));
        c.append(&w);
        c.count(conn).await?
    } else {
        -1
    };
    Ok((rows, total))
}

/// Rows of `E` in `scope` whose `column` is one of `values` (live ones, or
/// binned ones with `deleted`), in no particular order.
pub async fn by_values<E: Entity>(
    conn: &mut Conn<'_>,
    scope: &RowFilter,
    column: &'static str,
    values: &[String],
    deleted: bool,
) -> Result<Vec<E::Row>> {
    let def = &E::DEF;
    let t = def.table;
    def.column(column)?;
    let mut s = Sql::new(format!(
        "SELECT {} FROM {t} WHERE {t}.{column} IN ",
        select_list(def)
    ));
    s.bind_list(values.iter().map(|v| Bind::from(v.as_str())));
    let sc = scope_sql(def, scope);
    if !sc.is_empty() {
        s.push(" AND ").append(&sc);
    }
    if let Some(sd) = def.soft_delete {
        s.push(&format!(
            " AND {t}.{} IS {}NULL",
            sd.at,
            if deleted { "NOT " } else { "" }
        ));
    }
    s.load::<E::Row>(conn).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::{Column, DELETED};

    const DEF: Def = Def {
        type_name: "Thing",
        prefix: "thg",
        label: "thing",
        table: "things",
        topic: "test",
        columns: &[
            Column::new("id", Kind::Text),
            Column::text("name", "name").filter(Ops::EQ),
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

    fn pg(s: &Sql) -> String {
        diesel::debug_query::<diesel::pg::Pg, _>(s).to_string()
    }

    #[test]
    fn value_dependent_conditions_are_planned_for_their_values() {
        const COLUMNS: &[Column] = &[
            Column::new("id", Kind::Text),
            Column::text("name", "name").filter(Ops::EQ.and(Ops::PREFIX)),
            Column::int("version", "version"),
            Column::time("created_at", "createdAt").filter(Ops::RANGE),
        ];
        let def = Def {
            columns: COLUMNS,
            ..DEF
        };
        let q = |c: Cond| ListQuery {
            conds: vec![c],
            ..Default::default()
        };
        let eq = where_sql(&def, &RowFilter::All, &q(Cond::Eq("name", "x".into()))).unwrap();
        assert!(!eq.planned_each_time(), "an equality keeps its cached plan");
        let prefix = where_sql(&def, &RowFilter::All, &q(Cond::Prefix("name", "Ac".into())));
        let mut statement = Sql::new("SELECT id FROM things WHERE ");
        statement.append(&prefix.unwrap());
        assert!(
            statement.planned_each_time(),
            "a prefix is planned each time"
        );
        let range = Cond::Range("created_at", Some(Bind::from("2026-01-01")), None);
        assert!(
            where_sql(&def, &RowFilter::All, &q(range))
                .unwrap()
                .planned_each_time()
        );
    }

    #[test]
    fn row_scope_becomes_a_condition() {
        assert!(scope_sql(&DEF, &RowFilter::All).is_empty());
        assert!(
            pg(&scope_sql(&DEF, &RowFilter::Own("usr_1".into())))
                .starts_with("things.owner_id = $1")
        );
        let team = pg(&scope_sql(&DEF, &RowFilter::Team(vec!["team_a".into()])));
        assert!(
            team.starts_with("things.owner_id IN (SELECT id FROM users WHERE team_id IN ($1))"),
            "{team}"
        );
        assert!(pg(&scope_sql(&DEF, &RowFilter::Nothing)).starts_with("1 = 0"));
    }

    #[test]
    fn routed_rows_add_their_group_and_assignee() {
        const THROUGH: Scope = Scope::Through {
            fk: "account_id",
            table: "accounts",
            owner: "owner_id",
        };
        let mut def = DEF;
        def.scope = Scope::Routed {
            owner: &THROUGH,
            group: "group_id",
            assignee: "assignee_id",
        };
        let worked = RowFilter::OrAssigned(
            Box::new(RowFilter::OrGroup(
                Box::new(RowFilter::Nothing),
                vec!["team_a".into()],
            )),
            "usr_1".into(),
        );
        let s = pg(&scope_sql(&def, &worked));
        assert!(
            s.starts_with("((((1 = 0) OR things.group_id IN ($1))) OR things.assignee_id = $2)"),
            "{s}"
        );
        let own = pg(&scope_sql(&def, &RowFilter::Own("usr_1".into())));
        assert!(
            own.starts_with("things.account_id IN (SELECT id FROM accounts WHERE owner_id = $1)"),
            "{own}"
        );
        let all = RowFilter::OrGroup(Box::new(RowFilter::All), vec![]);
        assert!(scope_sql(&def, &all).is_empty());
        // Types that are not routed ignore the group, as they ignore the
        // assignee.
        let plain = pg(&scope_sql(&DEF, &worked));
        assert!(plain.starts_with("1 = 0"), "{plain}");
    }

    #[test]
    fn a_list_element_is_matched_whole_and_literally() {
        assert_eq!(element_pattern("vip"), r#"%"vip"%"#);
        assert_eq!(element_pattern("50%_off"), r#"%"50\%\_off"%"#);
        assert_eq!(element_pattern(r#"a"b\"#), r#"%"a\\"b\\\\"%"#);
    }

    #[test]
    fn undeclared_conditions_and_bad_declarations_are_refused() {
        let q = ListQuery {
            conds: vec![Cond::Prefix("name", "x".into())],
            ..Default::default()
        };
        assert!(where_sql(&DEF, &RowFilter::All, &q).is_err());
        assert!(DEF.problems().is_empty(), "{:?}", DEF.problems());
        const BROKEN: &[Column] = &[
            Column::new("id", Kind::Text),
            Column::text("name", "name").nullable().sort(),
        ];
        let broken = Def {
            columns: BROKEN,
            ..DEF
        };
        let problems = broken.problems();
        assert!(
            problems.iter().any(|p| p.contains("version is missing")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("sort column name may be NULL")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("scope column owner_id")),
            "{problems:?}"
        );
    }
}
