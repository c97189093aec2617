//! The binary as users meet it: the server on the embedded demo over real
//! sockets, and the CLI's outputs and exit codes. No AWS is involved.

mod support;

use std::path::PathBuf;

use serde_json::Value;
use support::product::{run, scan, Server};

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("server-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn demo_server_answers_every_route() {
    let server = Server::start(&["--demo"], &[]);
    type Case = (
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static [u8],
        u16,
    );
    let cases: &[Case] = &[
        ("GET", "/health", &[], b"", 200),
        ("GET", "/ready", &[], b"", 200),
        ("GET", "/v1/frameworks", &[], b"", 200),
        ("GET", "/v1/frameworks/cis-aws-3.0", &[], b"", 200),
        ("GET", "/v1/checks", &[], b"", 200),
        ("GET", "/v1/audit", &[], b"", 200),
        ("GET", "/v1/audit?framework=isms-p-2023", &[], b"", 200),
        (
            "POST",
            "/v1/audit",
            &[("Content-Type", "application/json")],
            br#"{"frameworks":["cis-aws-3.0"]}"#,
            200,
        ),
        ("GET", "/v1/frameworks/pci", &[], b"", 404),
        ("GET", "/nothing", &[], b"", 404),
        ("PUT", "/v1/audit", &[], b"", 405),
        ("GET", "/v1/audit?framework=nope", &[], b"", 400),
        (
            "POST",
            "/v1/audit",
            &[("Content-Type", "application/json")],
            b"{not json",
            400,
        ),
        (
            "POST",
            "/v1/audit",
            &[("Content-Type", "text/plain")],
            b"frameworks",
            415,
        ),
    ];
    for (method, target, headers, body, status) in cases {
        let (got, response_headers, raw) = server.request(method, target, headers, body);
        assert_eq!(
            got,
            *status,
            "{method} {target}: {}",
            String::from_utf8_lossy(&raw)
        );
        let value: Value = serde_json::from_slice(&raw)
            .unwrap_or_else(|e| panic!("{method} {target}: not JSON: {e}"));
        assert_eq!(
            header(&response_headers, "content-type"),
            Some("application/json")
        );
        assert_eq!(
            header(&response_headers, "x-content-type-options"),
            Some("nosniff")
        );
        if *status >= 400 {
            assert!(
                value["message"].as_str().is_some_and(|m| m.len() > 10),
                "{method} {target}: {value}"
            );
        }
        if target.starts_with("/v1/audit") && *status == 200 {
            assert_eq!(header(&response_headers, "cache-control"), Some("no-store"));
            assert_eq!(value["source"], "demo");
            assert_eq!(value["account"]["id"], "111122223333");
        }
    }

    let (_, health) = server.get_json("/health");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let (_, checks) = server.get_json("/v1/checks");
    assert!(checks["checks"].as_array().is_some_and(|c| c.len() >= 19));
    let (_, isms) = server.get_json("/v1/frameworks/isms-p-2023");
    let control = isms["controls"]
        .as_array()
        .expect("controls")
        .iter()
        .find(|c| c["id"] == "2.5.3")
        .expect("2.5.3");
    assert_eq!(control["title_ko"], "사용자 인증");

    // Oversized bodies are refused before they are read.
    let big = vec![b'x'; 70 * 1024];
    let (status, _, _) = server.request(
        "POST",
        "/v1/audit",
        &[("Content-Type", "application/json")],
        &big,
    );
    assert_eq!(status, 413);
    let (status, _, _) = server.request("GET", "/health", &[], b"");
    assert_eq!(status, 200, "the server keeps serving");
}

#[test]
fn healthcheck_reports_the_local_server() {
    let server = Server::start(&["--demo"], &[]);
    let listen = vec![(
        "DSPM_LISTEN".to_string(),
        format!("0.0.0.0:{}", server.port),
    )];
    let out = run(&["healthcheck"], &listen);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(server);
    let out = run(&["healthcheck"], &listen);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
}

#[test]
fn scan_exit_codes() {
    // Findings exist in the demo: exit 1, with a full report.
    let (code, report) = scan(&["--demo"], &[]);
    assert_eq!(code, 1);
    assert_eq!(report["frameworks"].as_array().map(Vec::len), Some(2));

    // An inventory where everything passes: exit 0.
    let mut inventory: Value =
        serde_json::from_str(include_str!("../src/demo/inventory.json")).expect("demo inventory");
    inventory["s3"]["buckets"] = serde_json::json!({"value": []});
    inventory["s3"]["account_public_access_block"] = serde_json::json!({"value": {
        "block_public_acls": true, "ignore_public_acls": true, "block_public_policy": true, "restrict_public_buckets": true}});
    inventory["iam"]["password_policy"]["value"]["minimum_password_length"] = 16.into();
    inventory["iam"]["password_policy"]["value"]["password_reuse_prevention"] = 24.into();
    inventory["iam"]["credential_report"] = serde_json::json!({"value": []});
    inventory["iam"]["users"] = serde_json::json!({"value": []});
    inventory["iam"]["policies"] = serde_json::json!({"value": []});
    let path = scratch("clean").join("inventory.json");
    std::fs::write(&path, inventory.to_string()).expect("write");
    let (code, report) = scan(&["--inventory", path.to_str().expect("utf-8")], &[]);
    let failing: Vec<_> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["status"] == "FAIL" || r["status"] == "ERROR")
        .collect();
    assert_eq!((code, failing.len()), (0, 0), "{failing:#?}");

    // The audit cannot run: exit 2 and the reason on stderr.
    type Case = (
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
        &'static str,
    );
    let cases: &[Case] = &[
        (&["scan"], &[], "AWS_REGION is not set"),
        (
            &["scan"],
            &[
                ("AWS_REGION", "eu-west-1"),
                ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", "x"),
            ],
            "long-term access keys are refused",
        ),
        (
            &["scan", "--inventory", "/nonexistent/inventory.json"],
            &[],
            "cannot read inventory",
        ),
        (
            &["scan", "--demo", "--framework", "pci-dss-9"],
            &[],
            "unknown framework",
        ),
        (&["scan", "--format", "yaml"], &[], "unknown format"),
        (&["serve"], &[], "AWS_REGION is not set"),
        (
            &["collect"],
            &[("AWS_REGION", "eu-west-1")],
            "no AWS credentials found",
        ),
        (
            &["scan"],
            &[
                ("AWS_REGION", "eu-west-1"),
                ("AWS_ENDPOINT_URL", "http://example.com"),
            ],
            "plain http",
        ),
    ];
    for (args, env, message) in cases {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let out = run(args, &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed a report");
    }
}

#[test]
fn table_format_lists_every_result() {
    let out = run(
        &[
            "scan",
            "--demo",
            "--format",
            "table",
            "--framework",
            "cis-aws-3.0",
        ],
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (_, report) = scan(&["--demo", "--framework", "cis-aws-3.0"], &[]);
    let results = report["results"].as_array().expect("results").len();
    let rows = text
        .lines()
        .filter(|l| {
            ["PASS ", "FAIL ", "ERROR ", "MANUAL "]
                .iter()
                .any(|s| l.starts_with(s))
        })
        .count();
    assert_eq!(rows, results);
    assert!(text.contains("cis-aws-3.0 3.0.0:"), "{text}");
}
