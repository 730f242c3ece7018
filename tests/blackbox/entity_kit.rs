//! The entity kit on a test-only entity: a module's whole declaration is
//! the few dozen lines below, and core gives it lists (conditions, search,
//! keyset order, totalCount, row scope), writes with version CONFLICT and
//! VALIDATION, audit entries and events, and the recycle bin, on both
//! backends.

use std::sync::Arc;

use crm_core::App;
use crm_core::access::{Principal, RowFilter};
use crm_core::db::Conn;
use crm_core::entity::sql::Sql;
use crm_core::entity::{
    self, Column, Cond, DELETED, Def, Entity, Kind, ListQuery, Ops, Scope, WriteCtx, store,
};
use crm_core::error::{Checks, Error, Result};
use crm_core::paging::{self, Direction, PageQuery};

use crate::support::*;
use crate::{both, server};

diesel::table! {
    kit_notes (id) {
        id -> Text,
        title -> Text,
        body -> Nullable<Text>,
        priority -> BigInt,
        owner_id -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> BigInt,
        deleted_at -> Nullable<Timestamp>,
        deleted_by -> Nullable<Text>,
    }
}

#[derive(Clone, Debug, diesel::QueryableByName, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = kit_notes)]
struct NoteRow {
    id: String,
    title: String,
    body: Option<String>,
    priority: i64,
    owner_id: String,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
    version: i64,
    deleted_at: Option<chrono::NaiveDateTime>,
    deleted_by: Option<String>,
}

struct Notes;

/// The test's module: registers the entity (for `node(id)` routing, custom
/// fields and references) beside the compiled-in modules.
struct KitModule;

impl crm_core::module::Module for KitModule {
    fn name(&self) -> &'static str {
        "kit-test"
    }

    fn entities(&self) -> &'static [crm_core::module::Entity] {
        const E: &[crm_core::module::Entity] = &[crm_core::module::Entity::of(&Notes::DEF)];
        E
    }

    // Notes mentioning an erased person lose the mentions.
    fn erase<'a>(
        &'a self,
        conn: &'a mut Conn<'_>,
        person: &'a crm_core::privacy::Person<'a>,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<(&'static str, i64)>>> {
        Box::pin(async move {
            let rows: Vec<NoteRow> = Sql::new("SELECT * FROM kit_notes ORDER BY id")
                .load(conn)
                .await?;
            let mut n = 0;
            for r in rows {
                let body = r.body.as_deref().unwrap_or_default();
                if let Some(clean) = crm_core::privacy::scrub_text(body, person.identifiers) {
                    let mut q = Sql::new("UPDATE kit_notes SET body = ");
                    q.bind(clean.as_str())
                        .push(" WHERE id = ")
                        .bind(r.id.as_str());
                    q.execute(conn).await?;
                    n += 1;
                }
            }
            Ok(vec![("KitNote", n)])
        })
    }

    fn personal_data<'a>(
        &'a self,
        _app: &'a App,
        _by: &'a Principal,
        person: &'a crm_core::privacy::Person<'a>,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<(&'static str, serde_json::Value)>>> {
        Box::pin(async move { Ok(vec![("kitNotes", serde_json::json!([person.id]))]) })
    }
}

static KIT: KitModule = KitModule;

#[derive(Default)]
struct NoteFields {
    title: Option<String>,
    priority: Option<i64>,
    owner: Option<String>,
}

impl Entity for Notes {
    const DEF: Def = Def {
        type_name: "KitNote",
        prefix: "note",
        label: "note",
        table: "kit_notes",
        topic: "kit",
        columns: &[
            Column::new("id", Kind::Text).api("id"),
            Column::text("title", "title")
                .filter(Ops::PREFIX.and(Ops::EQ))
                .sort()
                .search(),
            Column::text("body", "body").nullable().search(),
            Column::int("priority", "priority")
                .filter(Ops::RANGE.and(Ops::IN))
                .sort(),
            Column::text("owner_id", "ownerId").filter(Ops::EQ),
            Column::time("created_at", "createdAt").sort(),
            Column::time("updated_at", "updatedAt"),
            Column::int("version", "version"),
            Column::time("deleted_at", "deletedAt").nullable(),
            Column::new("deleted_by", Kind::Text).nullable(),
        ],
        scope: Scope::Owner("owner_id"),
        soft_delete: DELETED,
        custom_fields: false,
    };
    type Row = NoteRow;
    type Fields = NoteFields;

    fn snapshot(r: &NoteRow) -> serde_json::Value {
        serde_json::json!({"title": r.title, "priority": r.priority, "ownerId": r.owner_id})
    }

    fn blank() -> NoteRow {
        serde_json::from_value(serde_json::json!({
            "id": "", "title": "", "body": null, "priority": 0, "owner_id": "",
            "created_at": "2026-01-01T00:00:00", "updated_at": "2026-01-01T00:00:00",
            "version": 1, "deleted_at": null, "deleted_by": null,
        }))
        .unwrap()
    }

    fn requested_owner(f: &NoteFields) -> Option<&str> {
        f.owner.as_deref()
    }

    async fn apply(
        _w: &WriteCtx<'_>,
        _conn: &mut Conn<'_>,
        row: &mut NoteRow,
        f: NoteFields,
    ) -> Result<()> {
        let mut c = Checks::default();
        if let Some(t) = f.title {
            if t.trim().is_empty() {
                c.take::<()>(Err(Error::invalid("title", "must not be empty")))?;
            }
            row.title = t;
        }
        if let Some(p) = f.priority {
            if !(0..=5).contains(&p) {
                c.take::<()>(Err(Error::invalid("priority", "must be 0 to 5")))?;
            }
            row.priority = p;
        }
        c.finish()
    }
}

const DDL: &str = "CREATE TABLE kit_notes (id TEXT PRIMARY KEY, title TEXT NOT NULL, body TEXT, \
    priority BIGINT NOT NULL, owner_id TEXT NOT NULL, created_at TIMESTAMP NOT NULL, \
    updated_at TIMESTAMP NOT NULL, version BIGINT NOT NULL, deleted_at TIMESTAMP, deleted_by TEXT)";

fn page(first: i64, after: Option<String>) -> PageQuery {
    PageQuery {
        after,
        before: None,
        limit: first,
        backwards: false,
    }
}

async fn titles(app: &App, scope: &RowFilter, q: &ListQuery) -> (Vec<String>, i64) {
    let mut c = app.db.conn().await.unwrap();
    let (rows, total) = entity::list::<Notes>(&mut c.conn(), scope, q, &page(50, None), true)
        .await
        .unwrap();
    (rows.into_iter().map(|r| r.title).collect(), total)
}

both!(
    a_declared_entity_gets_lists_writes_and_a_recycle_bin,
    |b| async move {
        assert!(
            Notes::DEF.problems().is_empty(),
            "{:?}",
            Notes::DEF.problems()
        );
        let mut modules: Vec<&'static dyn crm_core::module::Module> =
            crm_gateway::modules::MODULES.to_vec();
        modules.push(&KIT);
        crm_core::module::install(modules.leak());
        let db = TestDb::new(b).await;
        let app = App::start(config(&db, &[]), Arc::new(crm_gateway::schema::catalog()))
            .await
            .unwrap();
        crm_core::identity::bootstrap::ensure_admin(&app)
            .await
            .unwrap();
        {
            let mut c = app.db.conn().await.unwrap();
            Sql::new(DDL).execute(&mut c.conn()).await.unwrap();
        }
        let system = Principal::System;
        let owner = {
            let mut c = app.db.conn().await.unwrap();
            crm_core::identity::repo::user_by_email(&mut c.conn(), ADMIN_EMAIL)
                .await
                .unwrap()
                .unwrap()
                .id
        };
        // Create: the kit sets id, owner, timestamps and version.
        let mut made = Vec::new();
        for (title, priority) in [
            ("Beta", 2),
            ("alpha", 5),
            ("Gamma", 1),
            ("Alps", 3),
            ("Delta", 4),
        ] {
            let fields = NoteFields {
                title: Some(title.into()),
                priority: Some(priority),
                owner: Some(owner.clone()),
            };
            made.push(store::create::<Notes>(&app, &system, fields).await.unwrap());
        }
        assert!(
            made.iter()
                .all(|n| n.id.starts_with("note_") && n.version == 1)
        );
        // VALIDATION names every bad field, and nothing is written.
        let bad = NoteFields {
            title: Some(" ".into()),
            priority: Some(9),
            owner: Some(owner.clone()),
        };
        match store::create::<Notes>(&app, &system, bad).await {
            Err(Error::Validation(f)) => {
                let names: Vec<&str> = f.iter().map(|e| e.field.as_str()).collect();
                assert_eq!(names, ["title", "priority"]);
            }
            other => panic!("expected VALIDATION, got {other:?}"),
        }
        let all = RowFilter::All;
        let (_, total) = titles(&app, &all, &ListQuery::default()).await;
        assert_eq!(total, 5);

        // Conditions, search and order.
        let by = |col, dir| Some((col, dir));
        let q = ListQuery {
            conds: vec![Cond::Range("priority", Some(2.into()), Some(5.into()))],
            order: by("priority", Direction::Desc),
            ..Default::default()
        };
        assert_eq!(
            titles(&app, &all, &q).await,
            (vec!["Delta".into(), "Alps".into(), "Beta".into()], 3)
        );
        let q = ListQuery {
            conds: vec![Cond::Prefix("title", "Al".into())],
            ..Default::default()
        };
        assert_eq!(titles(&app, &all, &q).await.0, ["Alps"]);
        let q = ListQuery {
            search: Some("AL".into()),
            order: by("title", Direction::Asc),
            ..Default::default()
        };
        assert_eq!(titles(&app, &all, &q).await.0, ["Alps", "alpha"]);
        let q = ListQuery {
            conds: vec![Cond::In("priority", vec![1.into(), 5.into()])],
            order: by("title", Direction::Asc),
            ..Default::default()
        };
        assert_eq!(titles(&app, &all, &q).await.0, ["Gamma", "alpha"]);
        // A column not declared for a condition is refused.
        let q = ListQuery {
            conds: vec![Cond::Eq("body", "x".into())],
            ..Default::default()
        };
        let mut c = app.db.conn().await.unwrap();
        assert!(
            entity::list::<Notes>(&mut c.conn(), &all, &q, &page(5, None), false)
                .await
                .is_err()
        );
        drop(c);

        // Keyset pages: two at a time by priority, every row once.
        let q = ListQuery {
            order: by("priority", Direction::Asc),
            ..Default::default()
        };
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let mut c = app.db.conn().await.unwrap();
            let (mut rows, _) =
                entity::list::<Notes>(&mut c.conn(), &all, &q, &page(2, after.clone()), false)
                    .await
                    .unwrap();
            let more = rows.len() > 2;
            rows.truncate(2);
            let Some(last) = rows.last() else { break };
            after = Some(paging::pair(
                &entity::list::sort_value::<Notes>(&q, last).unwrap(),
                &last.id,
            ));
            seen.extend(rows.iter().map(|r| r.priority));
            if !more {
                break;
            }
        }
        assert_eq!(seen, [1, 2, 3, 4, 5]);

        // Row scope: another user's own scope sees nothing, the owner's all.
        assert_eq!(
            titles(
                &app,
                &RowFilter::Own("usr_nobody".into()),
                &ListQuery::default()
            )
            .await
            .1,
            0
        );
        assert_eq!(
            titles(&app, &RowFilter::Own(owner.clone()), &ListQuery::default())
                .await
                .1,
            5
        );
        assert_eq!(
            titles(&app, &RowFilter::Nothing, &ListQuery::default())
                .await
                .1,
            0
        );

        // Update: a stale version is CONFLICT and changes nothing.
        let beta = made[0].clone();
        let upd = |t: &str| NoteFields {
            title: Some(t.into()),
            ..Default::default()
        };
        let after_upd = store::update::<Notes>(&app, &system, &all, &beta.id, 1, upd("Beta 2"))
            .await
            .unwrap();
        assert_eq!((after_upd.version, after_upd.title.as_str()), (2, "Beta 2"));
        match store::update::<Notes>(&app, &system, &all, &beta.id, 1, upd("lost")).await {
            Err(Error::Conflict(m)) => assert!(m.contains("changed by someone else"), "{m}"),
            other => panic!("expected CONFLICT, got {other:?}"),
        }
        // Outside the caller's scope: NOT_FOUND.
        let other = RowFilter::Own("usr_nobody".into());
        assert!(matches!(
            store::update::<Notes>(&app, &system, &other, &beta.id, 2, upd("x")).await,
            Err(Error::NotFound(_))
        ));

        // Recycle bin: delete, list the bin, restore, delete, purge.
        let gone = store::delete::<Notes>(&app, &system, &all, &beta.id, 2)
            .await
            .unwrap();
        assert!(gone.deleted_at.is_some());
        assert_eq!(titles(&app, &all, &ListQuery::default()).await.1, 4);
        let bin = ListQuery {
            deleted: true,
            ..Default::default()
        };
        assert_eq!(titles(&app, &all, &bin).await.0, ["Beta 2"]);
        let back = store::restore::<Notes>(&app, &system, &all, &beta.id)
            .await
            .unwrap();
        assert_eq!((back.deleted_at, back.version), (None, 4));
        assert!(matches!(
            store::purge::<Notes>(&app, &system, &all, &beta.id).await,
            Err(Error::NotFound(_))
        ));
        store::delete::<Notes>(&app, &system, &all, &beta.id, 4)
            .await
            .unwrap();
        store::purge::<Notes>(&app, &system, &all, &beta.id)
            .await
            .unwrap();
        assert_eq!(titles(&app, &all, &bin).await.1, 0);
        assert_eq!(titles(&app, &all, &ListQuery::default()).await.1, 4);

        // Every write left its audit entry and event in the same transaction.
        let mut c = app.db.conn().await.unwrap();
        let audited = Sql::new("SELECT COUNT(*) AS n FROM audit_log WHERE entity_type = 'KitNote'")
            .count(&mut c.conn())
            .await
            .unwrap();
        let events = Sql::new("SELECT COUNT(*) AS n FROM outbox WHERE entity_type = 'KitNote'")
            .count(&mut c.conn())
            .await
            .unwrap();
        // 5 creates, 1 update, delete, restore, delete, purge.
        assert_eq!((audited, events), (10, 10));
    }
);

// ---------------------------------------------------------------------------
// Exports: the entity declares its columns and filter; core writes the file
// with the caller's row scope, the filter and only the readable columns.

use crm_core::entity::export::{self, ExportColumn, Exportable, Selection, Target};
use crm_core::tabular::ExportFormat;

/// The list filter of notes, as a GraphQL input.
#[derive(async_graphql::InputObject, Clone, Debug, Default)]
struct NoteExportFilter {
    /// Priority at least this.
    min_priority: Option<i64>,
    /// Title starts with this.
    title_prefix: Option<String>,
}

impl Exportable for Notes {
    const LIST: &'static str = "notes";
    const COLUMNS: &'static [ExportColumn<NoteRow>] = &[
        ExportColumn::field("id", |r| serde_json::json!(r.id)),
        ExportColumn::field("title", |r| serde_json::json!(r.title)),
        ExportColumn::field("body", |r| serde_json::json!(r.body)),
        ExportColumn::field("priority", |r| serde_json::json!(r.priority)),
        ExportColumn::field("ownerId", |r| serde_json::json!(r.owner_id)),
        ExportColumn::field("createdAt", |r| export::time(r.created_at)),
        ExportColumn::field("version", |r| serde_json::json!(r.version)),
    ];
    type Filter = NoteExportFilter;

    async fn select(_app: &App, _by: &Principal, f: &NoteExportFilter) -> Result<Selection> {
        let mut conds = Vec::new();
        if let Some(p) = f.min_priority {
            conds.push(Cond::Range("priority", Some(p.into()), None));
        }
        if let Some(t) = &f.title_prefix {
            conds.push(Cond::Prefix("title", t.clone()));
        }
        Ok(Selection {
            query: ListQuery {
                conds,
                ..Default::default()
            },
            ..Default::default()
        })
    }
}

// Imports: the same entity declares its columns and one row hook; the kit
// does headers, modes, duplicates, owners, the error report and writes.

use crm_core::entity::import::{
    self as kit_import, CellErrors, Cells, DuplicateHandling, DuplicateKey, ImportColumn,
    ImportMode, ImportOptions, Importable, RowCtx, RowInput,
};
use crm_core::jobs::{self, JobStatus, Outcome, RowError};

impl Importable for Notes {
    const COLUMNS: &'static [ImportColumn] = &[
        ImportColumn::new("title", &["subject", "标题"]),
        ImportColumn::new("priority", &["prio", "优先级"]),
    ];
    const REQUIRED: &'static [&'static str] = &["title"];
    const KEY: Option<DuplicateKey> = Some(DuplicateKey {
        column: "title",
        lower: true,
    });
    const JOB_KIND: &'static str = "import.kit_notes";
    type Session = ();

    async fn session(_app: &App, _by: &Principal, _used: &[&'static str]) -> Result<()> {
        Ok(())
    }

    fn key(cells: &Cells<'_>) -> Option<String> {
        cells.get("title").map(str::to_lowercase)
    }

    async fn fields(
        _session: &mut (),
        _conn: &mut Conn<'_>,
        cells: &Cells<'_>,
        _base: Option<&NoteRow>,
        _ctx: RowCtx,
        errs: &mut CellErrors,
    ) -> Result<RowInput<NoteFields>> {
        let priority = cells.get("priority").and_then(|p| match p.parse() {
            Ok(v) => Some(v),
            Err(_) => {
                errs.push(("priority", format!("{p:?} is not a whole number")));
                None
            }
        });
        Ok(RowInput {
            fields: NoteFields {
                title: cells.text("title"),
                priority,
                owner: None,
            },
            set: Vec::new(),
        })
    }
}

/// A role that reads its own notes but not their body.
const READER_POLICY: &str = "p, kit_reader, KitNote, read:own, allow\n\
    p, kit_reader, KitNote.*, read, allow\n\
    p, kit_reader, KitNote.body, read, deny";

both!(
    a_declared_entity_exports_its_readable_columns_in_scope,
    |b| async move {
        let mut modules: Vec<&'static dyn crm_core::module::Module> =
            crm_gateway::modules::MODULES.to_vec();
        modules.push(&KIT);
        crm_core::module::install(modules.leak());
        let db = TestDb::new(b).await;
        // The schema's fields of the type (a compiled-in module's GraphQL type
        // would bring them), and a policy with a role for it.
        let mut catalog = crm_gateway::schema::catalog();
        catalog.readable.insert(
            "KitNote".into(),
            [
                "id",
                "title",
                "body",
                "priority",
                "ownerId",
                "createdAt",
                "version",
            ]
            .map(String::from)
            .into(),
        );
        catalog
            .writable
            .insert("KitNote".into(), Default::default());
        let data_dir = config(&db, &[]).data_dir;
        let policies = data_dir.join("policies");
        std::fs::create_dir_all(&policies).unwrap();
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
        std::fs::copy(format!("{root}/model.conf"), policies.join("model.conf")).unwrap();
        let base = std::fs::read_to_string(format!("{root}/policy.csv")).unwrap();
        std::fs::write(
            policies.join("policy.csv"),
            format!("{base}\n{READER_POLICY}\n"),
        )
        .unwrap();
        let dir = policies.display().to_string();
        let app = App::start(config(&db, &[("policy-dir", &dir)]), Arc::new(catalog))
            .await
            .unwrap();
        crm_core::identity::bootstrap::ensure_admin(&app)
            .await
            .unwrap();
        let system = Principal::System;
        let owner = {
            let mut c = app.db.conn().await.unwrap();
            Sql::new(DDL).execute(&mut c.conn()).await.unwrap();
            crm_core::identity::repo::user_by_email(&mut c.conn(), ADMIN_EMAIL)
                .await
                .unwrap()
                .unwrap()
                .id
        };
        for (title, priority) in [("Alpha", 1), ("Alps", 4), ("Beta", 5), ("Other", 5)] {
            let fields = NoteFields {
                title: Some(title.into()),
                priority: Some(priority),
                owner: Some(owner.clone()),
            };
            store::create::<Notes>(&app, &system, fields).await.unwrap();
        }
        // More than a page of the owner's notes, all created at the same time
        // (keyset ties go by id), and one note of someone else.
        let mut c = app.db.conn().await.unwrap();
        for chunk in 0..6 {
            let mut s = Sql::new(
                "INSERT INTO kit_notes (id, title, body, priority, owner_id, created_at, \
             updated_at, version) VALUES ",
            );
            for i in 0..200 {
                if i > 0 {
                    s.push(", ");
                }
                s.push("(")
                    .bind(format!("note_bulk{:05}", chunk * 200 + i))
                    .push(", 'bulk', 'secret', 0, ")
                    .bind(owner.as_str())
                    .push(", '2026-01-01 00:00:00', '2026-01-01 00:00:00', 1)");
            }
            s.execute(&mut c.conn()).await.unwrap();
        }
        Sql::new("UPDATE kit_notes SET owner_id = 'usr_someone_else' WHERE title = 'Other'")
            .execute(&mut c.conn())
            .await
            .unwrap();
        drop(c);
        let reader = Principal::User(crm_core::access::UserPrincipal {
            id: owner.clone(),
            roles: vec!["kit_reader".into()],
            team_id: None,
            token_id: "tok_kit".into(),
        });
        let out_dir = data_dir.join("exports");
        let quiet = |_: i64| {};
        let target = |name: &str, format| Target {
            format,
            out: out_dir.join(name),
            job_id: None,
            progress: &quiet,
        };

        // CSV, filtered: priority >= 4 in the reader's scope, without the body.
        let filter = NoteExportFilter {
            min_priority: Some(4),
            ..Default::default()
        };
        let done = export::run::<Notes>(
            &app,
            &reader,
            &filter,
            &target("notes.csv", ExportFormat::Csv),
        )
        .await
        .unwrap();
        assert_eq!(done.counters.rows_done, 2);
        let csv = std::fs::read_to_string(done.result_path.unwrap()).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "id,title,priority,ownerId,createdAt,version");
        let mut titles: Vec<&str> = lines[1..]
            .iter()
            .map(|l| l.split(',').nth(1).unwrap())
            .collect();
        titles.sort();
        assert_eq!(titles, ["Alps", "Beta"]);
        assert!(!csv.contains("Other") && !csv.contains("secret"));

        // JSON Lines through the command-line path, filter given as JSON: every
        // page once, in the reader's scope only.
        let done = (export::kit::<Notes>().run)(crm_core::module::ExportRun {
            app: &app,
            by: &reader,
            kind: "notes",
            filter: Some(serde_json::json!({"minPriority": 0})),
            format: ExportFormat::JsonLines,
            out: out_dir.join("notes.jsonl"),
            progress: &quiet,
        })
        .await
        .unwrap();
        assert_eq!(done.counters.rows_done, 1_203);
        let jsonl = std::fs::read_to_string(done.result_path.unwrap()).unwrap();
        let rows: Vec<serde_json::Value> = jsonl
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 1_203);
        let ids: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 1_203);
        assert!(
            rows.iter()
                .all(|r| r.get("body").is_none() && r["ownerId"] == owner.as_str())
        );
        assert!(rows.iter().any(|r| r["title"] == "Alpha"));
        // The whole of it for a caller who may read everything, body included.
        let done = export::run::<Notes>(
            &app,
            &system,
            &NoteExportFilter {
                title_prefix: Some("Al".into()),
                ..Default::default()
            },
            &target("all.jsonl", ExportFormat::JsonLines),
        )
        .await
        .unwrap();
        let jsonl = std::fs::read_to_string(done.result_path.unwrap()).unwrap();
        let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
        assert!(first.get("body").is_some(), "{first}");
        assert_eq!(done.counters.rows_done, 2);
        // A filter key the list does not have is VALIDATION.
        let bad = (export::kit::<Notes>().run)(crm_core::module::ExportRun {
            app: &app,
            by: &reader,
            kind: "notes",
            filter: Some(serde_json::json!({"colour": "red"})),
            format: ExportFormat::Csv,
            out: out_dir.join("bad.csv"),
            progress: &quiet,
        })
        .await;
        assert!(matches!(bad, Err(Error::Validation(_))), "{bad:?}");
    }
);

async fn import_notes(
    app: &App,
    csv: &str,
    opts: ImportOptions,
) -> Result<(Outcome, Vec<RowError>)> {
    let path = std::env::temp_dir().join(format!("{}.csv", crm_core::ids::new_id("kitimp")));
    std::fs::write(&path, csv).unwrap();
    let by = Principal::System;
    let job = jobs::create(&app.db, &by, Notes::JOB_KIND, &serde_json::json!({}), None)
        .await
        .unwrap();
    let out = kit_import::run::<Notes>(app, &by, &path, &opts, &job.id, &|_, _, _| {}).await;
    let _ = std::fs::remove_file(&path);
    let mut c = app.db.conn().await.unwrap();
    let errors = jobs::errors(&mut c.conn(), &job.id, (0, ""), 100)
        .await
        .unwrap();
    out.map(|o| (o, errors))
}

both!(a_declared_entity_imports_csv_files, |b| async move {
    let mut modules: Vec<&'static dyn crm_core::module::Module> =
        crm_gateway::modules::MODULES.to_vec();
    modules.push(&KIT);
    crm_core::module::install(modules.leak());
    let db = TestDb::new(b).await;
    let app = App::start(config(&db, &[]), Arc::new(crm_gateway::schema::catalog()))
        .await
        .unwrap();
    crm_core::identity::bootstrap::ensure_admin(&app)
        .await
        .unwrap();
    {
        let mut c = app.db.conn().await.unwrap();
        Sql::new(DDL).execute(&mut c.conn()).await.unwrap();
    }
    let owner = {
        let mut c = app.db.conn().await.unwrap();
        crm_core::identity::repo::user_by_email(&mut c.conn(), ADMIN_EMAIL)
            .await
            .unwrap()
            .unwrap()
            .id
    };
    let notes = |app: App| async move {
        let mut c = app.db.conn().await.unwrap();
        let (rows, _) = entity::list::<Notes>(
            &mut c.conn(),
            &RowFilter::All,
            &ListQuery::default(),
            &page(50, None),
            false,
        )
        .await
        .unwrap();
        rows
    };
    let with_owner = |o: ImportOptions| ImportOptions {
        default_owner_id: Some(async_graphql::ID(owner.clone())),
        ..o
    };

    // Headers by alias; an owner by e-mail; every bad row reported with
    // its header, and all-or-nothing writes nothing.
    let csv = format!("Subject,Prio,Owner\nAlpha,1,{ADMIN_EMAIL}\nBeta,9,\n,2,\nGamma,x,\n");
    let (out, errors) = import_notes(&app, &csv, with_owner(ImportOptions::default()))
        .await
        .unwrap();
    assert_eq!(out.status, JobStatus::Failed, "{:?}", out.message);
    let errors: Vec<(i64, &str, &str)> = errors
        .iter()
        .map(|e| (e.line, e.column.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            (3, "Prio", "must be 0 to 5"),
            (4, "Subject", "is required"),
            (5, "Prio", "\"x\" is not a whole number"),
        ]
    );
    assert!(notes(app.clone()).await.is_empty());

    // A dry run counts and writes nothing.
    let dry = ImportOptions {
        dry_run: true,
        mode: ImportMode::SkipBadRows,
        ..ImportOptions::default()
    };
    let (out, _) = import_notes(&app, &csv, with_owner(dry)).await.unwrap();
    assert_eq!(out.status, JobStatus::Succeeded);
    assert_eq!((out.counters.rows_done, out.counters.failed), (4, 3));
    assert!(notes(app.clone()).await.is_empty());

    // Skip bad rows: the good row is written, owned as the file says.
    let skip = ImportOptions {
        mode: ImportMode::SkipBadRows,
        ..ImportOptions::default()
    };
    let (out, _) = import_notes(&app, &csv, with_owner(skip)).await.unwrap();
    assert_eq!(out.status, JobStatus::Succeeded);
    assert_eq!((out.counters.created, out.counters.failed), (1, 3));
    let rows = notes(app.clone()).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].title.as_str(), rows[0].priority), ("Alpha", 1));
    assert_eq!(rows[0].owner_id, owner);

    // Duplicates by key (case-insensitive): skipped by default, updated
    // on request; rows of one file naming the same new record fold into it.
    let csv = "标题,优先级\nalpha,4\nDelta,2\nDelta,3\n";
    let (out, _) = import_notes(&app, csv, with_owner(ImportOptions::default()))
        .await
        .unwrap();
    assert_eq!(
        (
            out.counters.created,
            out.counters.updated,
            out.counters.skipped
        ),
        (1, 0, 2)
    );
    let update = ImportOptions {
        duplicates: DuplicateHandling::Update,
        ..ImportOptions::default()
    };
    let csv = "title,priority\nalpha,4\nEpsilon,2\nepsilon,3\n";
    let (out, _) = import_notes(&app, csv, with_owner(update)).await.unwrap();
    assert_eq!(out.status, JobStatus::Succeeded, "{:?}", out.message);
    assert_eq!((out.counters.created, out.counters.updated), (1, 2));
    let mut rows = notes(app.clone()).await;
    rows.sort_by_key(|r| r.title.to_lowercase());
    let got: Vec<(&str, i64, i64)> = rows
        .iter()
        .map(|r| (r.title.as_str(), r.priority, r.version))
        .collect();
    // Each row's cells apply as written (the key matched "Alpha").
    assert_eq!(got, [("alpha", 4, 2), ("Delta", 2, 1), ("epsilon", 3, 1)]);
    // By id: the record in scope, or the row is reported.
    let csv = format!("id,title\n{},Alpha\nnote_missing,X\n", rows[0].id);
    let update = ImportOptions {
        duplicates: DuplicateHandling::Update,
        mode: ImportMode::SkipBadRows,
        ..ImportOptions::default()
    };
    let (out, errors) = import_notes(&app, &csv, with_owner(update)).await.unwrap();
    assert_eq!((out.counters.updated, out.counters.failed), (1, 1));
    assert_eq!(errors[0].column, "id");
    assert_eq!(errors[0].message, "no note note_missing in your scope");
    // Each write has its audit entry: three created, two updated.
    let mut c = app.db.conn().await.unwrap();
    let audited = Sql::new(
        "SELECT COUNT(*) AS n FROM audit_log WHERE entity_type = 'KitNote' \
         AND action IN ('created', 'updated')",
    )
    .count(&mut c.conn())
    .await
    .unwrap();
    assert_eq!(audited, 5);
    drop(c);

    // A column that is no field: refused before any row is read.
    match import_notes(
        &app,
        "title,colour\nx,red\n",
        with_owner(ImportOptions::default()),
    )
    .await
    {
        Err(Error::Validation(f)) => assert!(
            f[0].message
                .contains("column \"colour\" is not a field of KitNote"),
            "{f:?}"
        ),
        other => panic!("expected VALIDATION, got {other:?}"),
    }
});

both!(
    a_declared_entity_carries_a_timeline_and_joins_erasures,
    |b| async move {
        let mut modules: Vec<&'static dyn crm_core::module::Module> =
            crm_gateway::modules::MODULES.to_vec();
        modules.push(&KIT);
        crm_core::module::install(modules.leak());
        let s = server!(b);
        let app = &s.running.app;
        let admin = s.admin().await;
        let owner = {
            let mut c = app.db.conn().await.unwrap();
            Sql::new(DDL).execute(&mut c.conn()).await.unwrap();
            crm_core::identity::repo::user_by_email(&mut c.conn(), ADMIN_EMAIL)
                .await
                .unwrap()
                .unwrap()
                .id
        };
        let note = |title: &str| NoteFields {
            title: Some(title.into()),
            priority: Some(1),
            owner: Some(owner.clone()),
        };
        let system = Principal::System;
        let kept = store::create::<Notes>(app, &system, note("Kept"))
            .await
            .unwrap();
        let binned = store::create::<Notes>(app, &system, note("Binned"))
            .await
            .unwrap();
        store::delete::<Notes>(app, &system, &RowFilter::All, &binned.id, binned.version)
            .await
            .unwrap();

        // The registered entity is a timeline subject: named like an enum
        // value, in a literal or a variable.
        const LOG: &str = "mutation($i: CreateActivityInput!) { logActivity(input: $i) { id subjectType subjectId } }";
        let r = s
            .gql(Some(&admin), LOG, serde_json::json!({"i": {"kind": "NOTE", "subjectType": "KIT_NOTE", "subjectId": kept.id, "title": "Called about the note"}}))
            .await;
        assert_eq!(r["data"]["logActivity"]["subjectType"], "KIT_NOTE", "{r}");
        let q = format!(
            "{{ timeline(subjectType: KIT_NOTE, subjectId: \"{}\") {{ totalCount edges {{ node {{ title subjectType }} }} }} }}",
            kept.id
        );
        let r = s.gql(Some(&admin), &q, serde_json::json!({})).await;
        assert_eq!(r["data"]["timeline"]["totalCount"], 1, "{r}");
        assert_eq!(
            r["data"]["timeline"]["edges"][0]["node"]["title"],
            "Called about the note"
        );
        // A binned record, a missing one and an unknown type are refused,
        // and nothing is written.
        for (ty, id) in [
            ("KIT_NOTE", binned.id.as_str()),
            ("KIT_NOTE", "note_missing"),
            ("BOGUS", kept.id.as_str()),
        ] {
            let r = s
                .gql(Some(&admin), LOG, serde_json::json!({"i": {"kind": "NOTE", "subjectType": ty, "subjectId": id, "title": "x"}}))
                .await;
            assert_eq!(
                r["errors"][0]["extensions"]["code"], "VALIDATION",
                "{ty} {id}: {r}"
            );
        }
        for literal in ["BOGUS", "\"KIT_NOTE\""] {
            let q = format!(
                "{{ timeline(subjectType: {literal}, subjectId: \"x\") {{ totalCount }} }}"
            );
            let r = s.gql(Some(&admin), &q, serde_json::json!({})).await;
            assert_eq!(
                r["errors"][0]["extensions"]["code"], "VALIDATION",
                "{literal}: {r}"
            );
        }

        // Erasure runs the module's hook in the same transaction, and the
        // access report carries its part.
        let c = s
            .gql(Some(&admin), "mutation { createContact(input: {firstName: \"Ada\", lastName: \"Lovelace\", emails: [{value: \"ada.lovelace@example.com\", kind: WORK}]}) { id } }", serde_json::json!({}))
            .await;
        let contact = c["data"]["createContact"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut q = Sql::new("UPDATE kit_notes SET body = ");
        q.bind("Write to ada.lovelace@example.com")
            .push(" WHERE id = ")
            .bind(kept.id.as_str());
        {
            let mut c = app.db.conn().await.unwrap();
            q.execute(&mut c.conn()).await.unwrap();
        }
        let r = s
            .gql(
                Some(&admin),
                "query($id: ID!) { personalDataReport(contactId: $id) }",
                serde_json::json!({"id": contact}),
            )
            .await;
        assert_eq!(
            r["data"]["personalDataReport"]["kitNotes"],
            serde_json::json!([contact]),
            "{r}"
        );
        let r = s
            .gql(Some(&admin), "mutation($id: ID!) { eraseContact(id: $id, reason: \"asked\") { timelineEntries records { recordType rows } } }", serde_json::json!({"id": contact}))
            .await;
        let records = &r["data"]["eraseContact"]["records"];
        assert!(
            records
                .as_array()
                .unwrap()
                .contains(&serde_json::json!({"recordType": "KitNote", "rows": 1})),
            "{r}"
        );
        let mut c = app.db.conn().await.unwrap();
        let after = store::fetch::<Notes>(&mut c.conn(), &RowFilter::All, &kept.id)
            .await
            .unwrap();
        assert_eq!(after.body.as_deref(), Some("Write to [erased]"));
        drop(c);

        // Purging the record takes its timeline with it (the subject
        // reference, registered once by the timeline's module).
        let fresh = store::fetch::<Notes>(
            &mut app.db.conn().await.unwrap().conn(),
            &RowFilter::All,
            &kept.id,
        )
        .await
        .unwrap();
        store::delete::<Notes>(app, &system, &RowFilter::All, &kept.id, fresh.version)
            .await
            .unwrap();
        store::purge::<Notes>(app, &system, &RowFilter::All, &kept.id)
            .await
            .unwrap();
        let q = format!(
            "{{ timeline(subjectType: KIT_NOTE, subjectId: \"{}\") {{ totalCount }} }}",
            kept.id
        );
        let r = s.gql(Some(&admin), &q, serde_json::json!({})).await;
        assert_eq!(r["data"]["timeline"]["totalCount"], 0, "{r}");
    }
);
