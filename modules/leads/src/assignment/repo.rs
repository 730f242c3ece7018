//! Assignment rules and round-robin turns in the database. Scope comes
//! from core ([`team_scope_sql`]: a rule belongs to its team); every
//! function takes the caller's connection, so a transaction just works.

use chrono::NaiveDateTime;
use crm_core::access::RowFilter;
use crm_core::db::Conn;
use crm_core::entity::list::team_scope_sql;
use crm_core::entity::sql::{Bind, Sql};
use crm_core::error::{Error, Result};
use crm_core::ids;
use crm_core::schema::{lead_assignment_rules, lead_round_robin};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

/// A rule row.
#[derive(Clone, Debug, QueryableByName)]
#[diesel(table_name = lead_assignment_rules)]
pub struct RuleRow {
    pub id: String,
    pub position: i64,
    pub name: String,
    pub active: bool,
    /// JSON [`super::Conditions`].
    pub conditions: String,
    /// `USER`, `ROUND_ROBIN` or `QUEUE`.
    pub target_kind: String,
    pub target_user_id: Option<String>,
    /// The team the rule belongs to (its scope).
    pub team_id: Option<String>,
    pub open_lead_cap: Option<i64>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i64,
}

/// A round-robin rule's place in its rotation.
#[derive(Clone, Debug, QueryableByName)]
#[diesel(table_name = lead_round_robin)]
pub struct Turn {
    pub rule_id: String,
    pub last_user_id: Option<String>,
    pub turns: i64,
}

const COLUMNS: &str = "id, position, name, active, conditions, target_kind, target_user_id, \
                       team_id, open_lead_cap, created_at, updated_at, version";

/// The rules in `scope`, in order (first match first).
pub async fn list(conn: &mut Conn<'_>, scope: &RowFilter) -> Result<Vec<RuleRow>> {
    let mut s = Sql::new(format!(
        "SELECT {COLUMNS} FROM lead_assignment_rules WHERE "
    ));
    s.append(&team_scope_sql(scope, "team_id"))
        .push(" ORDER BY position, id");
    s.load(conn).await
}

/// Every active rule, in order (the rules that route leads, whoever
/// created the lead).
pub async fn active(conn: &mut Conn<'_>) -> Result<Vec<RuleRow>> {
    let mut s = Sql::new(format!(
        "SELECT {COLUMNS} FROM lead_assignment_rules WHERE active = "
    ));
    s.bind(Bind::Bool(Some(true)))
        .push(" ORDER BY position, id");
    s.load(conn).await
}

/// One rule in `scope` (None outside it or missing).
pub async fn get(conn: &mut Conn<'_>, scope: &RowFilter, id: &str) -> Result<Option<RuleRow>> {
    let mut s = Sql::new(format!(
        "SELECT {COLUMNS} FROM lead_assignment_rules WHERE id = "
    ));
    s.bind(id)
        .push(" AND ")
        .append(&team_scope_sql(scope, "team_id"));
    Ok(s.load(conn).await?.into_iter().next())
}

/// The largest position (0 without rules).
pub async fn last_position(conn: &mut Conn<'_>) -> Result<i64> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let s = Sql::new("SELECT COALESCE(MAX(position), 0) AS n FROM lead_assignment_rules");
    Ok(s.load::<N>(conn).await?.first().map_or(0, |n| n.n))
}

fn binds(r: &RuleRow) -> Vec<Bind> {
    vec![
        r.id.as_str().into(),
        r.position.into(),
        r.name.as_str().into(),
        Bind::Bool(Some(r.active)),
        r.conditions.as_str().into(),
        r.target_kind.as_str().into(),
        Bind::Text(r.target_user_id.clone()),
        Bind::Text(r.team_id.clone()),
        Bind::Int(r.open_lead_cap),
        r.created_at.into(),
        r.updated_at.into(),
        r.version.into(),
    ]
}

/// Inserts a rule and its round-robin place.
pub async fn insert(conn: &mut Conn<'_>, r: &RuleRow) -> Result<()> {
    let mut s = Sql::new(format!(
        "INSERT INTO lead_assignment_rules ({COLUMNS}) VALUES "
    ));
    s.bind_list(binds(r));
    s.execute(conn).await?;
    let mut s =
        Sql::new("INSERT INTO lead_round_robin (rule_id, last_user_id, turns, updated_at) VALUES ");
    s.bind_list([
        r.id.as_str().into(),
        Bind::Text(None),
        0i64.into(),
        ids::now().into(),
    ]);
    s.execute(conn).await?;
    Ok(())
}

/// Writes `r` if its stored version is still `expected` (CONFLICT if not);
/// returns it with its new version.
pub async fn update(conn: &mut Conn<'_>, r: &RuleRow, expected: i64) -> Result<RuleRow> {
    let mut r = r.clone();
    r.version = expected + 1;
    r.updated_at = ids::now();
    let mut s = Sql::new("UPDATE lead_assignment_rules SET position = ");
    s.bind(r.position)
        .push(", name = ")
        .bind(r.name.as_str())
        .push(", active = ")
        .bind(Bind::Bool(Some(r.active)))
        .push(", conditions = ")
        .bind(r.conditions.as_str())
        .push(", target_kind = ")
        .bind(r.target_kind.as_str())
        .push(", target_user_id = ")
        .bind(Bind::Text(r.target_user_id.clone()))
        .push(", team_id = ")
        .bind(Bind::Text(r.team_id.clone()))
        .push(", open_lead_cap = ")
        .bind(Bind::Int(r.open_lead_cap))
        .push(", updated_at = ")
        .bind(r.updated_at)
        .push(", version = ")
        .bind(r.version)
        .push(" WHERE id = ")
        .bind(r.id.as_str())
        .push(" AND version = ")
        .bind(expected);
    if s.execute(conn).await? == 0 {
        return Err(Error::stale("AssignmentRule", &r.id, expected));
    }
    Ok(r)
}

/// Moves the rules other than `except` to these positions (the order of a
/// move), without touching their versions: a position is the list's, not
/// the rule's content.
pub async fn renumber(conn: &mut Conn<'_>, order: &[(String, i64)]) -> Result<()> {
    for (id, position) in order {
        let mut s = Sql::new("UPDATE lead_assignment_rules SET position = ");
        s.bind(*position).push(" WHERE id = ").bind(id.as_str());
        s.execute(conn).await?;
    }
    Ok(())
}

/// Deletes a rule if its version is still `expected` (CONFLICT if not).
pub async fn delete(conn: &mut Conn<'_>, id: &str, expected: i64) -> Result<()> {
    let mut s = Sql::new("DELETE FROM lead_round_robin WHERE rule_id = ");
    s.bind(id);
    s.execute(conn).await?;
    let mut s = Sql::new("DELETE FROM lead_assignment_rules WHERE id = ");
    s.bind(id).push(" AND version = ").bind(expected);
    if s.execute(conn).await? == 0 {
        return Err(Error::stale("AssignmentRule", id, expected));
    }
    Ok(())
}

/// The rule's place in its rotation, locked until the transaction ends
/// (`FOR UPDATE` on PostgreSQL; SQLite serialises writers): two
/// transactions never read the same place.
pub async fn lock_turn(conn: &mut Conn<'_>, rule_id: &str) -> Result<Turn> {
    let lock = if matches!(conn, Conn::Pg(_)) {
        " FOR UPDATE"
    } else {
        ""
    };
    let mut s =
        Sql::new("SELECT rule_id, last_user_id, turns FROM lead_round_robin WHERE rule_id = ");
    s.bind(rule_id).push(lock);
    s.load::<Turn>(conn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Internal(format!("no round-robin place for rule {rule_id}")))
}

/// Records that `user` got the rule's latest turn.
pub async fn take_turn(conn: &mut Conn<'_>, t: &Turn, user: &str) -> Result<()> {
    let mut s = Sql::new("UPDATE lead_round_robin SET last_user_id = ");
    s.bind(user)
        .push(", turns = ")
        .bind(t.turns + 1)
        .push(", updated_at = ")
        .bind(ids::now())
        .push(" WHERE rule_id = ")
        .bind(t.rule_id.as_str());
    s.execute(conn).await?;
    Ok(())
}

/// A user who may take a turn.
#[derive(QueryableByName)]
pub struct Member {
    #[diesel(sql_type = Text)]
    pub id: String,
    /// Open leads owned (not CONVERTED or UNQUALIFIED, not binned).
    #[diesel(sql_type = BigInt)]
    pub open_leads: i64,
}

/// The active members of `team`, in id order, with their open leads.
pub async fn active_members(conn: &mut Conn<'_>, team: &str) -> Result<Vec<Member>> {
    let mut s = Sql::new(
        "SELECT users.id AS id, (SELECT COUNT(*) FROM leads WHERE leads.owner_id = users.id \
         AND leads.deleted_at IS NULL AND leads.status NOT IN ('CONVERTED', 'UNQUALIFIED')) \
         AS open_leads FROM users WHERE users.team_id = ",
    );
    s.bind(team)
        .push(" AND users.active = ")
        .bind(Bind::Bool(Some(true)))
        .push(" ORDER BY users.id");
    s.load(conn).await
}

/// One user if active, with open leads.
pub async fn active_user(conn: &mut Conn<'_>, id: &str) -> Result<Option<Member>> {
    let mut s = Sql::new(
        "SELECT users.id AS id, (SELECT COUNT(*) FROM leads WHERE leads.owner_id = users.id \
         AND leads.deleted_at IS NULL AND leads.status NOT IN ('CONVERTED', 'UNQUALIFIED')) \
         AS open_leads FROM users WHERE users.id = ",
    );
    s.bind(id)
        .push(" AND users.active = ")
        .bind(Bind::Bool(Some(true)));
    Ok(s.load(conn).await?.into_iter().next())
}

/// Ids of the live leads matching a list's WHERE clause (at most `limit`).
pub async fn lead_ids(conn: &mut Conn<'_>, where_sql: &Sql, limit: i64) -> Result<Vec<String>> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = Text)]
        id: String,
    }
    let mut s = Sql::new("SELECT leads.id AS id FROM leads");
    s.append(where_sql)
        .push(" ORDER BY leads.created_at, leads.id LIMIT ")
        .bind(limit);
    Ok(s.load::<Id>(conn)
        .await?
        .into_iter()
        .map(|i| i.id)
        .collect())
}
