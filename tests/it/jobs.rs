//! The job scheduler on short test schedules: runs are recorded, failures do not stop the next
//! run, a run still going is never doubled, an empty schedule disables a job.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use leadcache::jobs::{Schedule, Scheduler};

use crate::support::TestApp;

const EVERY_SECOND: &str = "* * * * * *";

/// Polls `cond` every 100 ms for up to 60 s (a loaded machine may be slow; the result is what
/// counts, not the speed).
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..600 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_job_every_second_backs_up_records_and_prunes_to_backup_keep() {
    let app = TestApp::start_with(|c| c.backup_keep = 2).await;
    app.create_lead(serde_json::json!({"fullName": "Kept"}))
        .await;
    let mut jobs = Scheduler::new(app.state().clone()).await.unwrap();
    jobs.add(
        "backup",
        Schedule::cron(Some(EVERY_SECOND)),
        leadcache::jobs::backup,
    )
    .await
    .unwrap();
    jobs.start().await.unwrap();
    until("three backup runs", || {
        jobs.stats("backup").unwrap().runs >= 3
    })
    .await;
    until("the last run to finish", || !jobs.running("backup")).await;
    let stats = jobs.stats("backup").unwrap();
    jobs.stop().await.unwrap();
    assert_eq!(stats.failures, 0, "{stats:?}");
    let ok = app
        .count("SELECT COUNT(*) AS n FROM backups WHERE outcome = 'ok' AND reason = 'scheduled'")
        .await;
    assert!(ok >= 3, "every run is recorded: {ok}");
    let files = leadcache::backup::files(&app.dir.path().join("backups"));
    assert!(
        !files.is_empty() && files.len() <= 2,
        "pruned to BACKUP_KEEP=2: {files:?}"
    );
    let outcome = app.count("SELECT COUNT(*) AS n FROM cache_meta WHERE key = 'job.backup.last_outcome' AND value = 'ok'").await;
    assert_eq!(outcome, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_is_recorded_and_the_next_run_happens_as_planned() {
    let app = TestApp::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut jobs = Scheduler::new(app.state().clone()).await.unwrap();
    let c = calls.clone();
    jobs.add("flaky", Schedule::cron(Some(EVERY_SECOND)), move |_state| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                Err(anyhow::anyhow!("disk on fire").context("first run"))
            } else {
                Ok(())
            }
        }
    })
    .await
    .unwrap();
    jobs.start().await.unwrap();
    until("the failing first run", || {
        jobs.stats("flaky").unwrap().runs >= 1
    })
    .await;
    let first = jobs.stats("flaky").unwrap();
    assert_eq!(first.failures, 1);
    assert_eq!(
        first.last_failure.as_deref(),
        Some("first run: disk on fire"),
        "the cause chain is kept"
    );
    until("a second run", || jobs.stats("flaky").unwrap().runs >= 2).await;
    until("its record", || !jobs.running("flaky")).await;
    let later = jobs.stats("flaky").unwrap();
    jobs.stop().await.unwrap();
    assert_eq!(later.failures, 1, "{later:?}");
    assert_eq!(later.last_error, None);
    let ok = app.count("SELECT COUNT(*) AS n FROM cache_meta WHERE key = 'job.flaky.last_outcome' AND value = 'ok'").await;
    assert_eq!(ok, 1, "the latest outcome is recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_still_going_at_the_next_tick_is_skipped_not_doubled() {
    let app = TestApp::start().await;
    let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut jobs = Scheduler::new(app.state().clone()).await.unwrap();
    let (n, m) = (now.clone(), max.clone());
    jobs.add(
        "slow",
        Schedule::every(Duration::from_secs(1)),
        move |_state| {
            let (n, m) = (n.clone(), m.clone());
            async move {
                let inside = n.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(inside, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2500)).await;
                n.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        },
    )
    .await
    .unwrap();
    jobs.start().await.unwrap();
    until("a skipped tick after a finished run", || {
        let s = jobs.stats("slow").unwrap();
        s.skipped >= 1 && s.runs >= 1
    })
    .await;
    jobs.stop().await.unwrap();
    assert_eq!(max.load(Ordering::SeqCst), 1, "never two runs at once");
}

#[tokio::test]
async fn an_empty_schedule_disables_the_job_and_a_bad_one_is_refused() {
    let app = TestApp::start_with(|c| {
        c.backup_schedule = None;
        c.cleanup_schedule = Some("0 30 4 * * 0".into());
    })
    .await;
    let mut jobs = Scheduler::new(app.state().clone()).await.unwrap();
    leadcache::jobs::register_defaults(&mut jobs).await.unwrap();
    assert_eq!(jobs.names(), ["cleanup"]);
    let err = jobs
        .add(
            "bad",
            Schedule::cron(Some("every day")),
            leadcache::jobs::backup,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bad"), "{err}");
    jobs.stop().await.unwrap();
}

#[tokio::test]
async fn cleanup_forgets_old_sync_runs_and_prunes_backups() {
    let app = TestApp::start_with(|c| c.backup_keep = 1).await;
    app.db()
        .run(|c| {
            use diesel::connection::SimpleConnection;
            c.batch_execute(
                "INSERT INTO sync_runs (kind, started_at, finished_at, outcome) VALUES \
                 ('push', '2020-01-01 00:00:00', '2020-01-01 00:00:01', 'ok'), \
                 ('push', datetime('now'), datetime('now'), 'ok');",
            )?;
            Ok(())
        })
        .await
        .unwrap();
    let dir = app.dir.path().join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["leads-20260101T000000Z.db", "leads-20260102T000000Z.db"] {
        std::fs::write(dir.join(name), b"x").unwrap();
    }
    leadcache::jobs::cleanup(app.state().clone()).await.unwrap();
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM sync_runs").await, 1);
    assert_eq!(leadcache::backup::files(&dir).len(), 1);
}
