//! A real Airtable client library (pyairtable) against the simulator, unchanged.

use std::process::Command;

use leadcache::airtable::sim::SimConfig;

use super::start_sim;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyairtable_lists_creates_updates_and_deletes_against_the_simulator() {
    let import = Command::new("python3")
        .args(["-c", "import pyairtable"])
        .output();
    let importable = import.as_ref().is_ok_and(|o| o.status.success());
    assert!(
        importable,
        "pyairtable is not importable: install it with `pip install pyairtable` (python3 -m pip install pyairtable). {:?}",
        import.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
    );
    let sim = start_sim(SimConfig {
        api_key: Some("patPyAirtable.check".into()),
        records: 230,
        // pyairtable does not pace itself (it only retries 429s for ~3 s).
        rate_limit: None,
        ..SimConfig::default()
    })
    .await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pyairtable_check.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .env("AIRTABLE_API_URL", sim.url())
        .env("AIRTABLE_API_KEY", "patPyAirtable.check")
        .env("AIRTABLE_BASE_ID", sim.base_id())
        .env("AIRTABLE_TABLE", sim.table())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("pyairtable_check.py stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        out.status.success(),
        "pyairtable check failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ALL OK"));
    assert!(sim.state.counts()["total"] >= 10);
}
