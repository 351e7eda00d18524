//! Checks the test fakes themselves (paging, scripts, refusal, event decoding), so a failing integration test points at the binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::cost_explorer::{self, CeOptions};
use crate::support::{ACCESS_KEY_ID, FakeCostExplorer, FakeReceiver, Mode, Reply};

/// A tiny keep-alive HTTP/1.1 client, independent of the server code under test.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(url: &str) -> Client {
        let address = url.trim_start_matches("http://").trim_end_matches('/');
        let stream = TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Client {
            reader: BufReader::new(stream),
        }
    }

    fn send(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .expect("write");

        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header");
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            let (name, value) = trimmed.split_once(':').expect("header colon");
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().expect("length"))
            .unwrap_or(0);
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).expect("body");
        (status, headers, body)
    }
}

fn ce_headers() -> Vec<(&'static str, String)> {
    vec![
        ("X-Amz-Target", cost_explorer::X_AMZ_TARGET.to_string()),
        ("Content-Type", cost_explorer::CONTENT_TYPE.to_string()),
        ("X-Amz-Date", "20220614T000000Z".to_string()),
        (
            "Authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20220614/us-east-1/ce/aws4_request, SignedHeaders=host, Signature=00"
            ),
        ),
    ]
}

fn ce_call(client: &mut Client, body: &Value) -> (u16, Value) {
    let headers = ce_headers();
    let borrowed: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let (status, _, body) = client.send("/", &borrowed, &body.to_string());
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn query(start: &str, end: &str, token: Option<&str>) -> Value {
    let mut body = json!({
        "TimePeriod": {"Start": start, "End": end},
        "Granularity": "DAILY",
        "Metrics": ["BlendedCost"],
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}]
    });
    if let Some(token) = token {
        body["NextPageToken"] = json!(token);
    }
    body
}

fn groups_of(page: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for result in page["ResultsByTime"].as_array().expect("ResultsByTime") {
        let date = result["TimePeriod"]["Start"]
            .as_str()
            .expect("Start")
            .to_string();
        for group in result["Groups"].as_array().expect("Groups") {
            out.push((
                date.clone(),
                group["Keys"][0].as_str().expect("key").to_string(),
                group["Metrics"]["BlendedCost"]["Amount"]
                    .as_str()
                    .expect("amount")
                    .to_string(),
            ));
        }
    }
    out
}

#[test]
fn fake_cost_explorer_pages_through_every_group_over_one_connection() {
    let ce = FakeCostExplorer::with_groups(5, 4);
    let mut client = Client::connect(&ce.url());

    let mut all = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let (status, page) = ce_call(
            &mut client,
            &query("2022-06-12", "2022-06-14", token.as_deref()),
        );
        assert_eq!(status, 200, "{page}");
        pages += 1;
        all.extend(groups_of(&page));
        match page.get("NextPageToken").and_then(Value::as_str) {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => break,
        }
    }
    assert_eq!(pages, 3, "10 groups at 4 per page");
    let expected: Vec<(String, String, String)> = ce
        .expected_lines("2022-06-12", "2022-06-14")
        .into_iter()
        .map(|l| (l.date, l.service, l.amount))
        .collect();
    assert_eq!(all, expected);
    assert_eq!(expected.len(), 10);
    assert!(expected.iter().any(|(_, _, a)| a == "0.0000001234"));
    assert!(expected.iter().any(|(_, _, a)| a == "-12.5"));

    let requests = ce.requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests.iter().all(|r| r.connection == 1),
        "keep-alive: one connection"
    );
    let issued: Vec<Option<String>> = ce.served().iter().map(|s| s.next_token.clone()).collect();
    assert!(issued[0].is_some() && issued[1].is_some() && issued[2].is_none());
    assert_eq!(
        ce.bodies()[1]["NextPageToken"],
        json!(issued[0].clone().unwrap())
    );
    ce.assert_no_violations();
}

#[test]
fn fake_cost_explorer_refuses_unknown_tokens_and_bad_headers() {
    let ce = FakeCostExplorer::with_groups(2, 1);
    let mut client = Client::connect(&ce.url());
    let (status, body) = ce_call(
        &mut client,
        &query("2022-06-13", "2022-06-14", Some("made-up")),
    );
    assert_eq!(status, 400);
    assert_eq!(body["__type"], "ValidationException");
    assert_eq!(ce.violations().len(), 1);

    let (status, _, _) = client.send("/", &[("Content-Type", "application/json")], "{}");
    assert_eq!(status, 400);
    let violations = ce.violations();
    assert_eq!(violations.len(), 2);
    assert!(violations[1].contains("X-Amz-Target"), "{violations:?}");
    assert!(violations[1].contains("Authorization"), "{violations:?}");
}

#[test]
fn fake_cost_explorer_serves_its_script_first() {
    let ce = FakeCostExplorer::start(CeOptions {
        groups_per_day: 1,
        empty_final_token: true,
        ..CeOptions::default()
    });
    ce.push(cost_explorer::throttling());
    ce.push(cost_explorer::html_502());
    let mut client = Client::connect(&ce.url());
    let (status, body) = ce_call(&mut client, &query("2022-06-13", "2022-06-14", None));
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("ThrottlingException"))
    );
    let (status, body) = ce_call(&mut client, &query("2022-06-13", "2022-06-14", None));
    assert_eq!((status, body), (502, Value::Null));
    let (status, body) = ce_call(&mut client, &query("2022-06-13", "2022-06-14", None));
    assert_eq!(status, 200);
    assert_eq!(body["NextPageToken"], "", "empty final token asked for");
    assert_eq!(groups_of(&body).len(), 1);
}

#[test]
fn fake_cost_explorer_lists_days_without_groups() {
    let ce = FakeCostExplorer::with_groups(0, 4);
    let mut client = Client::connect(&ce.url());
    let (status, body) = ce_call(&mut client, &query("2022-12-30", "2023-01-02", None));
    assert_eq!(status, 200);
    let days: Vec<&str> = body["ResultsByTime"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["TimePeriod"]["Start"].as_str().unwrap())
        .collect();
    assert_eq!(days, ["2022-12-30", "2022-12-31", "2023-01-01"]);
}

#[test]
fn fake_receiver_refuses_until_live_then_follows_its_script() {
    let receiver = FakeReceiver::start_later();
    let address = format!("127.0.0.1:{}", receiver.port());
    let refused = TcpStream::connect(&address).expect_err("reserved port must refuse");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    receiver.script([
        Reply::status(503),
        Reply::status(429).header("Retry-After", "1"),
    ]);
    receiver.go_live();
    let mut client = Client::connect(&receiver.url());
    let binary = [
        ("ce-specversion", "1.0"),
        ("ce-id", "id-1"),
        ("ce-source", "cloud.aws.billing"),
        ("ce-type", "aws.service.daily"),
        ("ce-time", "2022-06-14T07:05:55Z"),
        ("Content-Type", "application/json"),
    ];
    let data = r#"{"vanceSource":"cloud.aws.billing","vanceType":"aws.service.daily","date":"2022-06-13","service":"S","amount":"0.0000001234","unit":"USD"}"#;
    assert_eq!(client.send("/", &binary, data).0, 503);
    let (status, headers, _) = client.send("/", &binary, data);
    assert_eq!(status, 429);
    assert!(headers.contains(&("retry-after".to_string(), "1".to_string())));
    assert_eq!(client.send("/", &binary, data).0, 204);

    let structured = format!(
        r#"{{"specversion":"1.0","id":"id-2","source":"cloud.aws.billing","type":"aws.service.daily","datacontenttype":"application/json","time":"2022-06-14T07:05:55Z","data":{data}}}"#
    );
    let (status, _, _) = client.send(
        "/",
        &[(
            "Content-Type",
            "application/cloudevents+json; charset=utf-8",
        )],
        &structured,
    );
    assert_eq!(status, 204);

    assert_eq!(receiver.request_count(), 4);
    let events = receiver.accepted_events();
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[0].mode, events[0].id.as_str()),
        (Mode::Binary, "id-1")
    );
    assert_eq!(
        (events[1].mode, events[1].id.as_str()),
        (Mode::Structured, "id-2")
    );
    for event in &events {
        assert_eq!(event.amount, "0.0000001234");
        assert_eq!(event.key(), ("2022-06-13".to_string(), "S".to_string()));
    }
}

#[test]
fn fake_receiver_rule_answers_before_script() {
    let receiver = FakeReceiver::start();
    receiver.set_rule(|request| {
        request
            .body_text()
            .contains("bad")
            .then(|| Reply::status(400))
    });
    let mut client = Client::connect(&receiver.url());
    assert_eq!(client.send("/", &[], "bad").0, 400);
    assert_eq!(client.send("/", &[], "good").0, 204);
    assert_eq!(receiver.accepted_count(), 1);
}
