//! The admin page in a real headless Chromium, driven over WebDriver (fantoccini + chromedriver),
//! against the real server on a seeded temp database.
//!
//! Needs Debian's `chromium` and `chromium-driver`; without them the tests fail (never skip) with
//! the command that installs them. Each test takes [`BROWSER`] so only one browser runs at a time
//! on the 2-core machine, starts its own `chromedriver --port=<free port>` with a fresh profile,
//! and closes both at the end (also when it fails). Conditions are waited for by polling (up to
//! [`WAIT`]), never with fixed sleeps. Screenshots go to `<target>/browser-artifacts/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use serde_json::{Value, json};

use crate::support::TestApp;

/// One browser at a time.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Longest wait for a condition on the page.
const WAIT: Duration = Duration::from_secs(10);
const CHROMIUM: &str = "/usr/bin/chromium";
const SEEDED: usize = 300;

struct Browser {
    client: Client,
    /// Chromium's download folder.
    downloads: PathBuf,
}

/// What must outlive a scenario: the chromedriver process and the browser profile.
struct Session {
    driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

fn require_binaries() -> PathBuf {
    let driver = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("chromedriver"))
            .find(|p| p.is_file())
    });
    match driver {
        Some(d) if Path::new(CHROMIUM).is_file() => d,
        _ => panic!(
            "browser tests need Chromium and chromedriver: install them with \
             `apt-get update && apt-get install -y chromium chromium-driver`"
        ),
    }
}

impl Browser {
    async fn start() -> (Browser, Session) {
        let driver_bin = require_binaries();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = tokio::process::Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let downloads = profile.path().join("downloads");
        std::fs::create_dir_all(&downloads).unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
        ];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(format!(
            "--user-data-dir={}",
            profile.path().join("chrome").display()
        ));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": args,
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                    "download.directory_upgrade": true,
                }
            }),
        );
        // chromedriver takes a moment to listen: retry the session until it answers.
        let url = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let client = loop {
            let attempt =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps.clone())
                    .connect(&url)
                    .await;
            match attempt {
                Ok(c) => break c,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no WebDriver session from chromedriver on port {port}: {e}"),
            }
        };
        (
            Browser { client, downloads },
            Session {
                driver,
                _profile: profile,
            },
        )
    }
}

/// Runs one scenario with its own browser, one scenario at a time; the browser and chromedriver
/// are closed even when the scenario fails.
async fn with_browser<F, Fut>(scenario: F)
where
    F: FnOnce(Browser) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let _turn = BROWSER.lock().await;
    let (browser, mut session) = Browser::start().await;
    let client = browser.client.clone();
    let outcome = std::panic::AssertUnwindSafe(scenario(browser))
        .catch_unwind()
        .await;
    let _ = client.close().await;
    let _ = session.driver.kill().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A server on a database seeded with [`SEEDED`] sample leads.
async fn seeded_app() -> TestApp {
    let app = TestApp::start().await;
    app.db()
        .run(|c| leadcache::seed::seed(c, SEEDED, 7, false))
        .await
        .unwrap();
    app
}

/// Runs `script` (a function body; `arguments` are `args`) in the page.
async fn js(b: &Browser, script: &str, args: Vec<Value>) -> Value {
    b.client.execute(script, args).await.unwrap()
}

/// Polls `script` until it returns something truthy (not null/false/""/0); returns it.
async fn wait_js(b: &Browser, what: &str, script: &str, args: Vec<Value>) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = js(b, script, args.clone()).await;
        let truthy =
            !matches!(&v, Value::Null | Value::Bool(false)) && v != json!("") && v != json!(0);
        if truthy {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            let errors = js(b, "return [...document.querySelectorAll('[data-testid=section-error], [data-testid=toast-error], .error-box')].map(e => e.textContent).join(' | ')", vec![]).await;
            screenshot(b, &format!("FAILED-{}", what.replace(' ', "-"))).await;
            panic!("waited {WAIT:?} for {what}; errors shown on the page: {errors}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The trimmed text of the element with `data-testid`, once it exists and has text.
async fn testid_text(b: &Browser, testid: &str) -> String {
    let v = wait_js(
        b,
        &format!("text of {testid}"),
        "const e = document.querySelector(`[data-testid=\"${arguments[0]}\"]`); return e && e.textContent.trim();",
        vec![json!(testid)],
    )
    .await;
    v.as_str().unwrap().to_string()
}

async fn click(b: &Browser, css: &str) {
    wait_js(
        b,
        &format!("element {css}"),
        "return !!document.querySelector(arguments[0]);",
        vec![json!(css)],
    )
    .await;
    b.client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(b: &Browser, name: &str) {
    if let Ok(png) = b.client.screenshot().await {
        std::fs::write(artifacts_dir().join(format!("{name}.png")), png).unwrap();
    }
}

async fn open(b: &Browser, app: &TestApp, route: &str) {
    b.client
        .goto(&app.url(&format!("/#/{route}")))
        .await
        .unwrap();
}

/// A SQL query returning one number, with text parameters bound in order.
async fn number(app: &TestApp, sql: &str, params: &[&str]) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = sql.to_string();
    let params: Vec<String> = params.iter().map(|s| s.to_string()).collect();
    app.db()
        .run(move |c| {
            use diesel::RunQueryDsl;
            let mut q = diesel::sql_query(sql).into_boxed();
            for p in params {
                q = q.bind::<diesel::sql_types::Text, _>(p);
            }
            Ok(q.get_result::<N>(c)?.n)
        })
        .await
        .unwrap()
}

fn thousands(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[tokio::test]
async fn browser_dashboard_shows_the_totals_of_the_database() {
    let app = seeded_app().await;
    let app = &app;
    with_browser(|b| async move {
        open(&b, app, "dashboard").await;
        let total = number(app, "SELECT COUNT(*) AS n FROM leads WHERE deleted_at IS NULL", &[]).await;
        let pending = number(app, "SELECT COUNT(*) AS n FROM outbox WHERE state = 'pending'", &[]).await;
        assert_eq!(total, SEEDED as i64);
        assert_eq!(testid_text(&b, "total-leads").await, thousands(total));
        assert_eq!(testid_text(&b, "pending-changes").await, thousands(pending));
        assert_eq!(testid_text(&b, "open-conflicts").await, "0");
        assert_eq!(testid_text(&b, "cache-mode").await, "local-only");
        // The live indicator turns green once the WebSocket is acknowledged.
        wait_js(&b, "live indicator", "return document.querySelector('[data-testid=live-indicator]').dataset.state === 'live';", vec![]).await;
        screenshot(&b, "dashboard").await;
        for route in ["sync", "outbox", "backups", "export", "conflicts"] {
            open(&b, app, route).await;
            wait_js(&b, &format!("page {route}"), "return !!document.querySelector(`[data-testid=\"page-${arguments[0]}\"]`) && !document.querySelector('.loading');", vec![json!(route)]).await;
            screenshot(&b, route).await;
        }
    })
    .await;
}

#[tokio::test]
async fn browser_search_narrows_the_leads_table_and_a_lead_shows_its_history() {
    let app = seeded_app().await;
    let app = &app;
    let wanted = app
        .ok(
            "{ leads(first: 1, orderBy: [{field: CREATED_AT}]) { nodes { id fullName company } } }",
            json!({}),
        )
        .await;
    let lead = wanted["leads"]["nodes"][0].clone();
    let name = lead["fullName"].as_str().unwrap().to_string();
    let id = lead["id"].as_str().unwrap().to_string();
    let expected = app
        .ok(
            "query($s: String) { leads(search: $s) { totalCount } }",
            json!({"s": name}),
        )
        .await["leads"]["totalCount"]
        .as_i64()
        .unwrap();
    assert!(expected >= 1 && expected < SEEDED as i64, "{expected}");
    with_browser(|b| async move {
        open(&b, app, "leads").await;
        assert_eq!(testid_text(&b, "leads-total").await, format!("{SEEDED} leads (all leads) · showing 1–50"));
        b.client.find(Locator::Css("[data-testid=lead-search]")).await.unwrap().send_keys(&name).await.unwrap();
        let total = wait_js(
            &b,
            "the search result count",
            "const t = document.querySelector('[data-testid=leads-total]').textContent; return t.startsWith(arguments[0]) && t;",
            vec![json!(format!("{expected} leads (search:"))],
        )
        .await;
        assert!(total.as_str().unwrap().contains(&name), "{total}");
        let rows = js(&b, "return [...document.querySelectorAll('[data-testid=leads-table] tbody tr')].map(r => r.dataset.leadId);", vec![]).await;
        assert_eq!(rows.as_array().unwrap().len() as i64, expected.min(50));
        assert!(rows.as_array().unwrap().contains(&json!(id)), "the lead searched for is listed: {rows}");
        screenshot(&b, "leads-search").await;

        // Its detail page, reached by clicking its name, shows every event of its history.
        click(&b, &format!("tr[data-lead-id=\"{id}\"] a.lead-link")).await;
        let events = number(app, "SELECT COUNT(*) AS n FROM lead_events WHERE lead_id = ?", &[&id]).await;
        assert!(events >= 1);
        wait_js(
            &b,
            "the lead's history",
            "return document.querySelectorAll('[data-testid=lead-history-list] > li').length === arguments[0];",
            vec![json!(events)],
        )
        .await;
        let kinds = js(&b, "return [...document.querySelectorAll('[data-testid=lead-history-list] > li')].map(li => li.dataset.eventKind);", vec![]).await;
        assert_eq!(kinds.as_array().unwrap().last().unwrap(), "created", "oldest last: {kinds}");
        assert!(testid_text(&b, "lead-fields").await.contains(&name));
        screenshot(&b, "lead-detail").await;
    })
    .await;
}

#[tokio::test]
async fn browser_export_downloads_a_csv_of_the_filtered_rows() {
    let app = seeded_app().await;
    let app = &app;
    let won = number(
        app,
        "SELECT COUNT(*) AS n FROM leads WHERE status = 'won' AND deleted_at IS NULL",
        &[],
    )
    .await;
    assert!(won > 0);
    with_browser(|b| async move {
        open(&b, app, "leads").await;
        click(&b, "[data-testid=filter-status] summary").await;
        click(&b, "[data-testid=filter-status-won]").await;
        wait_js(&b, "the won filter", "return document.querySelector('[data-testid=leads-total]').textContent.startsWith(arguments[0]);", vec![json!(format!("{won} leads (status: won)"))]).await;
        click(&b, "[data-testid=export-csv]").await;
        let dir = b.downloads.clone();
        let deadline = tokio::time::Instant::now() + WAIT;
        let file = loop {
            let done = std::fs::read_dir(&dir).unwrap().filter_map(Result::ok).map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "csv"));
            if let Some(f) = done {
                break f;
            }
            if tokio::time::Instant::now() >= deadline {
                screenshot(&b, "FAILED-export").await;
                let status = app.get("/export/leads.csv?status=won").await.status();
                panic!("no CSV was downloaded in {WAIT:?}; GET /export/leads.csv answers {status}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        screenshot(&b, "export").await;
        let mut csv = csv::Reader::from_path(&file).unwrap();
        let headers = csv.headers().unwrap().clone();
        let status_col = headers.iter().position(|h| h == "status").unwrap_or_else(|| panic!("no status column: {headers:?}"));
        let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
        assert_eq!(rows.len() as i64, won, "one row per filtered lead");
        assert!(rows.iter().all(|r| &r[status_col] == "won"));
    })
    .await;
}

#[tokio::test]
async fn browser_keeping_the_local_value_of_a_conflict_resolves_it_in_the_database() {
    let app = seeded_app().await;
    let app = &app;
    let lead = app
        .ok("{ leads(first: 1) { nodes { id fullName } } }", json!({}))
        .await["leads"]["nodes"][0]
        .clone();
    let id = lead["id"].as_str().unwrap().to_string();
    let conflict_id = number(
        app,
        "INSERT INTO sync_conflicts (lead_id, field, local_value, remote_value, base_value, resolution, created_at) \
         VALUES (?, 'title', '\"CTO\"', '\"CEO\"', '\"VP\"', 'remote', CURRENT_TIMESTAMP) RETURNING id AS n",
        &[&id],
    )
    .await;
    number(
        app,
        "UPDATE leads SET sync_state = 'conflict' WHERE id = ? RETURNING 1 AS n",
        &[&id],
    )
    .await;
    with_browser(|b| async move {
        open(&b, app, "conflicts").await;
        let card = format!("[data-testid=conflict-{conflict_id}]");
        wait_js(&b, "the conflict card", "return !!document.querySelector(arguments[0]);", vec![json!(card)]).await;
        assert_eq!(
            js(&b, "return document.querySelector(arguments[0] + ' [data-testid=value-local]').textContent;", vec![json!(card)]).await,
            "CTO"
        );
        screenshot(&b, "conflicts-open").await;
        click(&b, &format!("{card} [data-testid=keep-local]")).await;
        // The mutation comes with the sync engine; say so plainly when it is missing.
        let probe = app.gql("mutation { resolveConflict(id: \"0\", keep: LOCAL) { id } }", json!({})).await;
        let missing = probe["errors"][0]["message"].as_str().is_some_and(|m| m.contains("Unknown field"));
        assert!(!missing, "the server has no resolveConflict mutation yet: {probe}");
        wait_js(&b, "the conflict to leave the open list", "return !document.querySelector(arguments[0]);", vec![json!(card)]).await;
        let resolved = number(
            app,
            "SELECT COUNT(*) AS n FROM sync_conflicts WHERE id = CAST(? AS INTEGER) AND resolution = 'local' AND resolved_at IS NOT NULL",
            &[&conflict_id.to_string()],
        )
        .await;
        assert_eq!(resolved, 1, "the conflict is resolved in the database, keeping the local value");
        screenshot(&b, "conflicts-resolved").await;
    })
    .await;
}

#[tokio::test]
async fn browser_a_lead_changed_through_graphql_appears_on_the_open_page_without_a_reload() {
    let app = seeded_app().await;
    let app = &app;
    with_browser(|b| async move {
        open(&b, app, "leads").await;
        testid_text(&b, "leads-table").await;
        wait_js(&b, "live indicator", "return document.querySelector('[data-testid=live-indicator]').dataset.state === 'live';", vec![]).await;
        // A marker that a reload would wipe out.
        js(&b, "window.__sameDocument = true; return true;", vec![]).await;
        // The oldest-updated lead is not on the first page (newest first) until it changes.
        let lead = app.ok("{ leads(first: 1, orderBy: [{field: UPDATED_AT, direction: ASC}]) { nodes { id } } }", json!({})).await;
        let id = lead["leads"]["nodes"][0]["id"].as_str().unwrap().to_string();
        let shown = js(&b, "return !!document.querySelector(`tr[data-lead-id=\"${arguments[0]}\"]`);", vec![json!(id)]).await;
        assert_eq!(shown, false);
        app.ok("mutation($id: ID!) { updateLead(id: $id, patch: {fullName: \"Zelda Liveupdate\"}) { id } }", json!({"id": id})).await;
        wait_js(
            &b,
            "the changed lead on the page",
            "const r = document.querySelector(`tr[data-lead-id=\"${arguments[0]}\"]`); return !!r && r.classList.contains('row-changed') && r.textContent.includes('Zelda Liveupdate');",
            vec![json!(id)],
        )
        .await;
        assert_eq!(js(&b, "return window.__sameDocument === true;", vec![]).await, true, "the page was not reloaded");
        screenshot(&b, "leads-live-update").await;
    })
    .await;
}
