//! `schema.graphql` at the repository root must match the code.

#[test]
fn committed_schema_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let current = leadcache::graphql::sdl();
    assert!(
        committed == current,
        "schema.graphql is out of date; regenerate it with:\n\n    cargo run -- schema > schema.graphql\n"
    );
}

#[tokio::test]
async fn the_server_serves_the_same_sdl() {
    let app = crate::support::TestApp::start().await;
    let body = app.get("/schema.graphql").await.text().await.expect("text");
    assert_eq!(body, leadcache::graphql::sdl());
}
