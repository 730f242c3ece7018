//! The team hierarchy, cached in memory for row-scope decisions and
//! refreshed when a team event arrives.

use std::sync::RwLock;

use crate::db::Db;
use crate::error::Result;
use crate::events::Event;
use crate::identity::repo;

/// (team id, parent team id) pairs.
type Tree = Vec<(String, Option<String>)>;

/// Cache of the team tree.
#[derive(Default)]
pub struct TeamCache {
    tree: RwLock<Option<Tree>>,
}

impl TeamCache {
    /// Drops the cache when a team changes.
    pub fn on_event(&self, e: &Event) {
        if e.entity_type == "Team" {
            *self.tree.write().expect("team cache") = None;
        }
    }

    /// `team` and every team below it.
    pub async fn below(&self, db: &Db, team: &str) -> Result<Vec<String>> {
        let cached = self.tree.read().expect("team cache").clone();
        let tree = match cached {
            Some(t) => t,
            None => {
                let mut c = db.conn().await?;
                let t: Tree = repo::all_teams(&mut c.conn())
                    .await?
                    .into_iter()
                    .map(|t| (t.id, t.parent_id))
                    .collect();
                *self.tree.write().expect("team cache") = Some(t.clone());
                t
            }
        };
        let mut out = vec![team.to_owned()];
        let mut i = 0;
        while i < out.len() {
            let cur = out[i].clone();
            for (id, parent) in &tree {
                if parent.as_deref() == Some(cur.as_str()) && !out.contains(id) {
                    out.push(id.clone());
                }
            }
            i += 1;
        }
        Ok(out)
    }

    /// Forgets the cache now (after a local team change).
    pub fn invalidate(&self) {
        *self.tree.write().expect("team cache") = None;
    }
}
