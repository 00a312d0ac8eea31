//! Test fixtures: a real server on 127.0.0.1 with a fresh temp-file database per test, and small
//! helpers to call it.

#![allow(dead_code)]

use leadcache::app::{Running, start};
use leadcache::config::Config;
use leadcache::db::Db;
use leadcache::state::{AppState, Mode};
use serde_json::{Value, json};

pub struct TestApp {
    pub dir: tempfile::TempDir,
    pub running: Running,
    pub http: reqwest::Client,
    /// Sent as `Authorization: Bearer` when set.
    pub token: Option<String>,
}

impl TestApp {
    /// A local-only server on a fresh database.
    pub async fn start() -> TestApp {
        TestApp::start_with(|_| {}).await
    }

    /// A server whose configuration `tweak` may change first (database path is set already).
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        TestApp::start_mode(Mode::LocalOnly, tweak).await
    }

    /// A server with the sync engine built from `tweak`'s Airtable settings (not started: tests
    /// run sync steps themselves).
    pub async fn start_synced(
        tweak: impl FnOnce(&mut Config),
        options: leadcache::sync::SyncOptions,
    ) -> TestApp {
        TestApp::build(Mode::Airtable, tweak, Some(options)).await
    }

    pub async fn start_mode(mode: Mode, tweak: impl FnOnce(&mut Config)) -> TestApp {
        TestApp::build(mode, tweak, None).await
    }

    async fn build(
        mode: Mode,
        tweak: impl FnOnce(&mut Config),
        sync: Option<leadcache::sync::SyncOptions>,
    ) -> TestApp {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::for_database(dir.path().join("leads.db"));
        config.backup_dir = dir.path().join("backups");
        config.bind = "127.0.0.1:0".parse().expect("addr");
        tweak(&mut config);
        let db = leadcache::app::open_database(&config).expect("open database");
        let state = match sync {
            Some(options) => {
                AppState::with_sync(config.clone(), db, mode, options).expect("sync engine")
            }
            None => AppState::new(config.clone(), db, mode),
        };
        let running = start(state, config.bind).await.expect("start server");
        TestApp {
            dir,
            running,
            http: reqwest::Client::new(),
            token: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.url())
    }

    pub fn db(&self) -> &Db {
        &self.running.app.state.db
    }

    pub fn state(&self) -> &AppState {
        &self.running.app.state
    }

    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// POSTs a GraphQL request; returns the whole response body.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        let resp = self
            .authorized(self.http.post(self.url("/graphql")))
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .expect("send");
        resp.json().await.expect("json body")
    }

    /// Like [`gql`], asserting there is no error; returns `data`.
    pub async fn ok(&self, query: &str, variables: Value) -> Value {
        let body = self.gql(query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
        body["data"].clone()
    }

    /// Like [`gql`], asserting the first error has `code`; returns the error.
    pub async fn err(&self, query: &str, variables: Value, code: &str) -> Value {
        let body = self.gql(query, variables).await;
        let error = body["errors"][0].clone();
        assert_eq!(
            error["extensions"]["code"], code,
            "expected {code}: {body:#}"
        );
        error
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.authorized(self.http.get(self.url(path)))
            .send()
            .await
            .expect("send")
    }

    /// Creates a lead from the given input fields; returns the lead JSON (id, version, ...).
    pub async fn create_lead(&self, input: Value) -> Value {
        let data = self
            .ok(
                "mutation($i: LeadInput!) { createLead(input: $i) { created lead { id version status fullName } } }",
                json!({"i": input}),
            )
            .await;
        data["createLead"]["lead"].clone()
    }

    /// A SQL count on the test database.
    pub async fn count(&self, sql: &'static str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        self.db()
            .run(move |c| {
                use diesel::RunQueryDsl;
                Ok(diesel::sql_query(sql).get_result::<N>(c)?.n)
            })
            .await
            .expect("count")
    }

    /// Runs SQL statements on the test database (to set up a failure, say).
    pub async fn execute(&self, sql: &'static str) {
        self.db()
            .run(move |c| {
                use diesel::connection::SimpleConnection;
                Ok(c.batch_execute(sql)?)
            })
            .await
            .expect("execute");
    }

    /// Every index and trigger of the test database, as SQLite stores them.
    pub async fn schema(&self) -> Vec<(String, String)> {
        self.db().run(|c| Ok(schema(c))).await.expect("schema")
    }
}

/// Every index and trigger of `c`'s database, as SQLite stores them: (name, SQL).
pub fn schema(c: &mut diesel::SqliteConnection) -> Vec<(String, String)> {
    use diesel::RunQueryDsl;
    use diesel::sql_types::Text;
    #[derive(diesel::QueryableByName)]
    struct Item {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Text)]
        sql: String,
    }
    diesel::sql_query(
        "SELECT name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY name",
    )
    .load::<Item>(c)
    .expect("schema")
    .into_iter()
    .map(|i| (i.name, i.sql))
    .collect()
}

/// Makes `c`'s database count the leads inserted while `leads_created_at` is dropped, that is
/// with index upkeep deferred (`bulk::with_deferred_upkeep`); read with [`deferred_inserts`].
pub fn count_deferred_inserts(c: &mut diesel::SqliteConnection) {
    use diesel::connection::SimpleConnection;
    c.batch_execute(
        "CREATE TABLE deferred_inserts (rid INTEGER); \
         CREATE TRIGGER count_deferred_inserts AFTER INSERT ON leads \
         WHEN NOT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'leads_created_at') \
         BEGIN INSERT INTO deferred_inserts VALUES (new.rid); END;",
    )
    .expect("count_deferred_inserts");
}

/// How many leads went in with index upkeep deferred (see [`count_deferred_inserts`]).
pub fn deferred_inserts(c: &mut diesel::SqliteConnection) -> i64 {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query("SELECT COUNT(*) AS n FROM deferred_inserts")
        .get_result::<N>(c)
        .expect("deferred_inserts")
        .n
}
