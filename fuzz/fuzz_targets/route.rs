//! The whole API behind the HTTP parser, `server::routes::handle`, on the
//! demo inventory (no AWS, no network), with an arbitrary method, path,
//! query, content type, authorization and body.
//!
//! Input: five lines (method, path, query, content type, authorization;
//! an empty content type or authorization line means the header is absent),
//! then the body. Missing lines are empty. Requests with an authorization
//! line are also served by an app that requires a bearer token.
//!
//! Properties: only the statuses the demo target can produce; every error
//! has a JSON body with `error` and a non-empty `message`; only successful
//! audits are marked sensitive; a 401 carries `WWW-Authenticate`; audit
//! slots are all released afterwards.
#![no_main]

use std::sync::OnceLock;

use dspm_audit::audit::Target;
use dspm_audit::config::ApiToken;
use dspm_audit::server::routes::{handle, ApiRequest, ApiResponse, App};
use libfuzzer_sys::fuzz_target;

const TOKEN: &str = "0123456789abcdef-fuzz-token";

fn apps() -> &'static (App, App) {
    static APPS: OnceLock<(App, App)> = OnceLock::new();
    APPS.get_or_init(|| {
        let token = ApiToken::new(TOKEN).expect("a valid token");
        (
            App::new(Target::demo(), 2, None),
            App::new(Target::demo(), 2, Some(token)),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let mut line = || -> &str {
        let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let field = std::str::from_utf8(&rest[..end]).unwrap_or("");
        rest = rest.get(end + 1..).unwrap_or(&[]);
        field
    };
    let method = line();
    let path = line();
    let query = line();
    let content_type = Some(line()).filter(|c| !c.is_empty());
    let authorization = Some(line()).filter(|a| !a.is_empty());
    let request = ApiRequest {
        method,
        path,
        query,
        content_type,
        authorization,
        body: rest,
    };
    let (open, guarded) = apps();
    check(open, &request);
    if authorization.is_some() {
        check(guarded, &request);
    }
});

fn check(app: &App, request: &ApiRequest) {
    let response: ApiResponse = handle(app, request);
    assert!(
        matches!(response.status, 200 | 400 | 401 | 404 | 405 | 415),
        "{} {}?{} answered {}: {}",
        request.method,
        request.path,
        request.query,
        response.status,
        response.body
    );
    if response.status >= 400 {
        assert!(response.body["error"].is_string(), "{}", response.body);
        assert!(
            response.body["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            response.body
        );
        assert!(!response.sensitive);
    }
    if response.status == 401 {
        assert!(response
            .headers
            .iter()
            .any(|(k, _)| *k == "WWW-Authenticate"));
    }
    if response.sensitive {
        assert_eq!(response.status, 200);
    }
    serde_json::to_vec(&response.body).expect("the body serializes");
    assert_eq!(app.audits.in_use(), 0, "an audit slot was not released");
}
