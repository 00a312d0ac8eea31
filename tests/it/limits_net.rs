//! Connection and input bounds (issue 15, items 9 and 10): header, idle and body timeouts, the
//! connection cap and a graceful stop, over raw TCP so nothing hides what the server does; then
//! the JSON `LIMIT` answer to an oversize body and the cap of every list argument. Timeouts are
//! set short through `Config`, so no test waits for the real 10 s.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TestApp;

/// Longest wait for anything that should happen "at once" (a loaded 2-core machine).
const SLACK: Duration = Duration::from_secs(5);

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.running.addr).await.unwrap()
}

/// How long until the server closes `stream` (EOF or reset), reading and dropping whatever it
/// sends; `None` if it is still open after `max`.
async fn closed_within(stream: &mut TcpStream, max: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = max.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

/// One HTTP/1.1 response read off `stream`: status, lower-cased headers, body (Content-Length
/// or chunked).
async fn read_response(stream: &mut TcpStream) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = tokio::time::timeout(SLACK, stream.read(&mut buf))
            .await
            .expect("a response in time")
            .unwrap();
        assert!(n > 0, "connection closed before a response");
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8(data[..head_end].to_vec()).unwrap();
    let mut rest = data[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = if let Some(len) = header("content-length") {
        let len: usize = len.parse().unwrap();
        while rest.len() < len {
            let n = tokio::time::timeout(SLACK, stream.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "body cut short");
            rest.extend_from_slice(&buf[..n]);
        }
        rest.truncate(len);
        rest
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        while !rest.windows(5).any(|w| w == b"0\r\n\r\n") {
            let n = tokio::time::timeout(SLACK, stream.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "chunked body cut short");
            rest.extend_from_slice(&buf[..n]);
        }
        let mut body = Vec::new();
        let mut at = 0;
        loop {
            let line_end = at + rest[at..].windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[at..line_end]).unwrap().trim(), 16)
                    .unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            at = line_end + 2 + size + 2;
        }
        body
    } else {
        Vec::new()
    };
    (status, headers, body)
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("(none)")
}

#[tokio::test]
async fn half_sent_and_silent_connections_are_closed_after_the_header_timeout() {
    let header = Duration::from_millis(400);
    let app = TestApp::start_with(|c| {
        c.http_header_timeout = header;
        c.http_idle_timeout = Duration::from_secs(30);
    })
    .await;
    // 60 half-sent requests (no blank line ends the headers) and 20 that send nothing at all.
    let mut half = Vec::new();
    for i in 0..60 {
        let mut s = connect(&app).await;
        s.write_all(format!("GET /healthz?{i} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").as_bytes())
            .await
            .unwrap();
        half.push(s);
    }
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(connect(&app).await);
    }
    let started = Instant::now();
    for s in half.iter_mut().chain(silent.iter_mut()) {
        let left = (header + SLACK).saturating_sub(started.elapsed());
        assert!(
            closed_within(s, left).await.is_some(),
            "a connection outlived the header timeout by {SLACK:?}"
        );
    }
    assert!(
        started.elapsed() >= header - Duration::from_millis(100),
        "closed before the timeout: {:?}",
        started.elapsed()
    );
    // A header that trickles in byte by byte is cut at the timeout too, counted from its
    // first byte, however lively it looks.
    let mut trickle = connect(&app).await;
    let began = Instant::now();
    let mut cut = false;
    for b in "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        .bytes()
    {
        if trickle.write_all(&[b]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if began.elapsed() > header + SLACK {
            break;
        }
    }
    let cut = cut || closed_within(&mut trickle, SLACK).await.is_some();
    assert!(cut, "a trickling header was not cut");
    assert!(began.elapsed() < header + SLACK, "{:?}", began.elapsed());

    // The server still answers.
    let mut s = connect(&app).await;
    s.write_all(get("/healthz").as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s).await.0, 200);
}

#[tokio::test]
async fn keep_alive_connections_live_for_the_idle_timeout_not_the_header_timeout() {
    let header = Duration::from_millis(300);
    let idle = Duration::from_millis(1500);
    let app = TestApp::start_with(|c| {
        c.http_header_timeout = header;
        c.http_idle_timeout = idle;
    })
    .await;
    let mut s = connect(&app).await;
    s.write_all(get("/healthz").as_bytes()).await.unwrap();
    let (status, _, body) = read_response(&mut s).await;
    assert_eq!((status, body.as_slice()), (200, b"ok".as_slice()));
    // Idle for longer than the header timeout: still open, and serves the next request.
    assert_eq!(
        closed_within(&mut s, header * 2).await,
        None,
        "an idle keep-alive connection was closed by the header timeout"
    );
    s.write_all(get("/healthz").as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s).await.0, 200);
    // Then closed once idle for the idle timeout.
    let closed = closed_within(&mut s, idle + SLACK)
        .await
        .expect("an idle connection outlived the idle timeout");
    assert!(
        closed >= idle - Duration::from_millis(150),
        "closed after {closed:?}, before the idle timeout"
    );
}

#[tokio::test]
async fn a_request_body_that_stalls_gets_408_and_a_slow_handler_is_not_cut() {
    let header = Duration::from_millis(400);
    let app = TestApp::start_with(|c| {
        c.http_header_timeout = header;
        c.http_idle_timeout = Duration::from_millis(600);
    })
    .await;
    let mut s = connect(&app).await;
    s.write_all(
        b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"query\":",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let (status, _, body) = read_response(&mut s).await;
    assert_eq!(status, 408, "{}", String::from_utf8_lossy(&body));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code(&body), "LIMIT", "{body:#}");
    assert!(started.elapsed() < header + SLACK);

    // A request the server takes longer than both timeouts to answer is answered: the watchdog
    // never cuts a request in progress. (A body that keeps coming, a chunk every 250 ms, is
    // one: each pause is under the body timeout, the whole is over the idle timeout.)
    let query = json!({"query": "{ statuses }"}).to_string();
    let mut s = connect(&app).await;
    s.write_all(
        format!(
            "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            query.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    for chunk in query.as_bytes().chunks(query.len() / 5 + 1) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        s.write_all(chunk).await.unwrap();
    }
    let (status, _, body) = read_response(&mut s).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(body["data"]["statuses"].is_array(), "{body:#}");
}

#[tokio::test]
async fn beyond_max_connections_new_ones_are_closed_at_once_and_websockets_count() {
    let app = TestApp::start_with(|c| {
        c.max_connections = 3;
        c.http_header_timeout = Duration::from_secs(30);
        c.http_idle_timeout = Duration::from_secs(30);
    })
    .await;
    // A WebSocket holds its slot after the upgrade.
    let ws = crate::access::ws_connect(&app, json!({})).await.unwrap();
    let mut held = vec![connect(&app).await, connect(&app).await];
    // Make sure both are accepted (served a request) before the next one comes.
    for s in &mut held {
        s.write_all(get("/healthz").as_bytes()).await.unwrap();
        assert_eq!(read_response(s).await.0, 200);
    }
    let mut extra = connect(&app).await;
    let _ = extra.write_all(get("/healthz").as_bytes()).await;
    let closed = closed_within(&mut extra, SLACK)
        .await
        .expect("a connection over the cap was held");
    assert!(closed < SLACK, "{closed:?}");

    // Closing one frees its slot.
    drop(ws);
    let deadline = Instant::now() + SLACK;
    loop {
        let mut s = connect(&app).await;
        let _ = s.write_all(get("/healthz").as_bytes()).await;
        let mut buf = [0u8; 12];
        if let Ok(Ok(n)) = tokio::time::timeout(SLACK, s.read(&mut buf)).await
            && n > 0
        {
            assert!(buf.starts_with(b"HTTP/1.1 200"), "{buf:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed WebSocket's slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn stop_waits_for_the_request_in_flight_and_closes_idle_connections() {
    let app = TestApp::start().await;
    let TestApp { running, dir, .. } = app;
    let addr = running.addr;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(get("/healthz").as_bytes()).await.unwrap();
    // The busy request's handler is waiting for its body: the server asked for it (100 Continue).
    let mut busy = TcpStream::connect(addr).await.unwrap();
    let query = json!({"query": "{ statuses }"}).to_string();
    busy.write_all(
        format!(
            "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            query.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(read_response(&mut busy).await.0, 100);
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    let mut stop = tokio::spawn(running.stop());
    assert!(
        closed_within(&mut idle, SLACK).await.is_some(),
        "stop left an idle connection open"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    if stop.is_finished() {
        panic!(
            "stop returned while a request was in progress: {:?}",
            (&mut stop).await
        );
    }
    assert!(
        TcpStream::connect(addr).await.is_err() || {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let _ = s.write_all(get("/healthz").as_bytes()).await;
            closed_within(&mut s, SLACK).await.is_some()
        },
        "a stopping server accepted a new request"
    );
    busy.write_all(query.as_bytes()).await.unwrap();
    let (status, headers, body) = read_response(&mut busy).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "connection" && v == "close"),
        "the last answer says the connection closes: {headers:?}"
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(body["data"]["statuses"].is_array(), "{body:#}");
    tokio::time::timeout(SLACK, &mut stop)
        .await
        .expect("stop did not return once the request was answered")
        .unwrap()
        .unwrap();
    drop(dir);
}

#[tokio::test]
async fn an_oversize_body_gets_the_json_limit_error_announced_or_chunked() {
    let app = TestApp::start().await;
    let max = leadcache::server::MAX_BODY_BYTES;
    // Announced by Content-Length: refused before it is read.
    let mut s = connect(&app).await;
    s.write_all(
        format!(
            "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            max + 1
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let (status, headers, body) = read_response(&mut s).await;
    assert_eq!(status, 413);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("application/json")),
        "{headers:?}"
    );
    let body: Value = serde_json::from_slice(&body).expect("a JSON body");
    assert_eq!(code(&body), "LIMIT", "{body:#}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains(&max.to_string()),
        "{body:#}"
    );

    // Chunked (no Content-Length): cut at the limit, same answer.
    let mut s = connect(&app).await;
    s.write_all(
        b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    let chunk = vec![b' '; 1024 * 1024];
    let mut sent = 0;
    let answer = loop {
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(&chunk);
        frame.extend_from_slice(b"\r\n");
        if s.write_all(&frame).await.is_err() || sent > max + 2 * chunk.len() {
            break read_response(&mut s).await;
        }
        sent += chunk.len();
        if sent > max {
            break read_response(&mut s).await;
        }
    };
    let (status, _, body) = answer;
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    let body: Value = serde_json::from_slice(&body).expect("a JSON body");
    assert_eq!(code(&body), "LIMIT", "{body:#}");
}

#[tokio::test]
async fn every_list_argument_has_a_cap_and_says_it() {
    let app = TestApp::start().await;
    let max = leadcache::graphql::inputs::MAX_FILTER_VALUES;

    // 100,000 statuses: refused with LIMIT naming the cap, not a SQL error.
    let many: Vec<String> = (0..100_000).map(|i| format!("s{i}")).collect();
    let e = app
        .err(
            "query($s: [String!]) { leads(filter: {status: $s}) { totalCount } }",
            json!({"s": many}),
            "LIMIT",
        )
        .await;
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("LeadFilter.status") && msg.contains(&format!("at most {max}")),
        "{msg}"
    );
    // In the query text as well (as many as fit in the 64 KiB limit).
    let literal: Vec<String> = (0..=max).map(|i| format!("\"s{i}\"")).collect();
    let e = app
        .err(
            &format!(
                "{{ leads(filter: {{status: [{}]}}) {{ totalCount }} }}",
                literal.join(",")
            ),
            json!({}),
            "LIMIT",
        )
        .await;
    assert!(
        e["message"].as_str().unwrap().contains("LeadFilter.status"),
        "{e}"
    );
    // At the cap it works.
    let at_cap: Vec<String> = (0..max).map(|i| format!("s{i}")).collect();
    app.ok(
        "query($s: [String!]) { leads(filter: {status: $s}) { totalCount } }",
        json!({"s": at_cap}),
    )
    .await;

    let states: Vec<&str> = std::iter::repeat_n("SYNCED", max + 1).collect();
    let e = app
        .err(
            "query($s: [SyncState!]) { leads(filter: {syncState: $s}) { totalCount } }",
            json!({"s": states}),
            "LIMIT",
        )
        .await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("LeadFilter.syncState"),
        "{e}"
    );

    let max_batch = leadcache::graphql::mutation::MAX_BATCH;
    let inputs: Vec<Value> = (0..=max_batch)
        .map(|i| json!({"fullName": format!("N{i}")}))
        .collect();
    let e = app
        .err(
            "mutation($i: [LeadInput!]!) { createLeads(inputs: $i) { created } }",
            json!({"i": inputs}),
            "LIMIT",
        )
        .await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains(&format!("at most {max_batch}")),
        "{e}"
    );
    assert_eq!(app.count("SELECT COUNT(*) AS n FROM leads").await, 0);

    let campaign = app
        .ok(
            "mutation { createCampaign(input: {name: \"Capped\"}) { id } }",
            json!({}),
        )
        .await["createCampaign"]["id"]
        .clone();
    let max_add = leadcache::campaigns::MAX_ADD;
    let ids: Vec<String> = (0..=max_add)
        .map(|i| format!("00000000-0000-0000-0000-{i:012}"))
        .collect();
    let e = app
        .err(
            "mutation($c: ID!, $l: [ID!]!) { addLeadsToCampaign(campaignId: $c, leadIds: $l) { id } }",
            json!({"c": campaign, "l": ids}),
            "LIMIT",
        )
        .await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains(&format!("at most {max_add}")),
        "{e}"
    );

    let order: Vec<Value> = (0..5).map(|_| json!({"field": "SCORE"})).collect();
    let e = app
        .err(
            "query($o: [LeadOrder!]) { leads(orderBy: $o) { totalCount } }",
            json!({"o": order}),
            "VALIDATION",
        )
        .await;
    assert!(e["message"].as_str().unwrap().contains("at most 4"), "{e}");
}
