//! The HTTP API as a pure function from request to response, so that every
//! route and every refusal is tested without a socket.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::audit::{self, AuditError, Target};
use crate::config::ApiToken;
use crate::evaluate;
use crate::report::frameworks;

/// What requests are served against: the audit target and the limits.
pub struct App {
    pub target: Target,
    pub audits: AuditSlots,
    pub token: Option<ApiToken>,
}

impl App {
    pub fn new(target: Target, max_concurrent_audits: usize, token: Option<ApiToken>) -> App {
        App {
            target,
            audits: AuditSlots::new(max_concurrent_audits),
            token,
        }
    }
}

/// Seconds a client is asked to wait when every audit slot is taken.
const RETRY_AFTER_SECONDS: u32 = 10;

/// A counting limit on audits running at once. Taking a slot never waits:
/// a full house is answered with 429 at once.
pub struct AuditSlots {
    max: usize,
    taken: AtomicUsize,
}

/// A taken slot, released on drop (also when the audit panics).
pub struct AuditSlot<'a>(&'a AuditSlots);

impl AuditSlots {
    pub fn new(max: usize) -> AuditSlots {
        AuditSlots {
            max,
            taken: AtomicUsize::new(0),
        }
    }

    pub fn try_take(&self) -> Option<AuditSlot<'_>> {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| AuditSlot(self))
    }

    pub fn in_use(&self) -> usize {
        self.taken.load(Ordering::Acquire)
    }
}

impl Drop for AuditSlot<'_> {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Most query parameters accepted on one request.
pub const MAX_QUERY_PARAMS: usize = 32;

/// The parts of a request the API looks at.
#[derive(Debug, Clone)]
pub struct ApiRequest<'a> {
    pub method: &'a str,
    /// The path without the query.
    pub path: &'a str,
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub body: &'a [u8],
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Value,
    /// The body already serialized, for large answers (an audit report):
    /// sent as is, instead of `body`, to spare a second copy in memory.
    pub rendered: Option<Vec<u8>>,
    pub headers: Vec<(&'static str, String)>,
}

impl ApiResponse {
    pub fn ok(body: Value) -> ApiResponse {
        ApiResponse {
            status: 200,
            body,
            rendered: None,
            headers: Vec::new(),
        }
    }

    fn with_header(mut self, name: &'static str, value: String) -> ApiResponse {
        self.headers.push((name, value));
        self
    }

    pub fn error(status: u16, message: impl Into<String>) -> ApiResponse {
        let error = match status {
            400 => "bad_request",
            401 => "unauthorized",
            404 => "not_found",
            405 => "method_not_allowed",
            408 => "request_timeout",
            411 => "length_required",
            413 => "payload_too_large",
            415 => "unsupported_media_type",
            429 => "too_many_requests",
            431 => "header_fields_too_large",
            502 => "bad_gateway",
            503 => "unavailable",
            505 => "http_version_not_supported",
            _ => "internal_error",
        };
        ApiResponse {
            status,
            body: json!({ "error": error, "message": message.into() }),
            rendered: None,
            headers: Vec::new(),
        }
    }
}

/// Routes one request.
pub fn handle(app: &App, request: &ApiRequest) -> ApiResponse {
    let path = request.path.trim_end_matches('/');
    // The probes stay open; everything else, unknown paths included, needs
    // the token, so that the API's shape is not shown to strangers.
    let open = matches!(path, "/health" | "/ready");
    if let Some(token) = &app.token {
        if !open && !token.accepts(request.authorization) {
            return ApiResponse::error(
                401,
                "this API needs a bearer token: send Authorization: Bearer <token>",
            )
            .with_header("WWW-Authenticate", "Bearer realm=\"dspm-audit\"".into());
        }
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let route = match segments.as_slice() {
        ["health"] => Route::Health,
        ["ready"] => Route::Ready,
        ["v1", "frameworks"] => Route::Frameworks,
        ["v1", "frameworks", id] => Route::Framework(id),
        ["v1", "checks"] => Route::Checks,
        ["v1", "audit"] => Route::Audit,
        _ => return ApiResponse::error(404, format!("no such endpoint: {}", clip(request.path))),
    };
    // HEAD is served where GET is cheap; an audit is never run for a HEAD.
    let allowed: &[&str] = if route == Route::Audit {
        &["GET", "POST"]
    } else {
        &["GET", "HEAD"]
    };
    if !allowed.contains(&request.method) {
        return ApiResponse::error(
            405,
            format!(
                "{} does not accept {}; use {}",
                clip(request.path),
                clip(request.method),
                allowed.join(" or ")
            ),
        )
        .with_header("Allow", allowed.join(", "));
    }
    if route != Route::Audit && !request.query.is_empty() {
        return ApiResponse::error(
            400,
            format!("{} takes no query parameters", clip(request.path)),
        );
    }
    match route {
        Route::Health => health(),
        Route::Ready => ready(&app.target),
        Route::Frameworks => ApiResponse::ok(framework_list()),
        Route::Framework(id) => match frameworks::find(id) {
            Some(f) => ApiResponse::ok(json!(f)),
            None => ApiResponse::error(
                404,
                format!(
                    "unknown framework {:?}; known: {}",
                    clip(id),
                    frameworks::ids().join(", ")
                ),
            ),
        },
        Route::Checks => ApiResponse::ok(json!({ "checks": evaluate::CHECKS })),
        Route::Audit => audit_route(app, request),
    }
}

/// Client input quoted back in a message or a log line: at most 64
/// characters, so an error never echoes a megabyte.
pub fn clip(text: &str) -> String {
    const MAX: usize = 64;
    if text.chars().count() <= MAX {
        return text.to_string();
    }
    text.chars().take(MAX).collect::<String>() + "…"
}

#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Health,
    Ready,
    Frameworks,
    Framework(&'a str),
    Checks,
    Audit,
}

pub fn health() -> ApiResponse {
    ApiResponse::ok(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// Readiness: whether an audit could start now. For a live account that
/// means credentials can be obtained (fetched or refreshed if needed); a
/// fixed inventory is always ready. Never calls an AWS service API.
pub fn ready(target: &Target) -> ApiResponse {
    match target {
        Target::Aws(aws) => match aws.credentials.credentials() {
            Ok(_) => ApiResponse::ok(
                json!({ "status": "ready", "credentials": aws.credentials.describe() }),
            ),
            Err(e) => ApiResponse::error(503, format!("credentials unavailable: {e}")),
        },
        Target::Fixed { .. } => {
            ApiResponse::ok(json!({ "status": "ready", "source": target.describe() }))
        }
    }
}

fn framework_list() -> Value {
    let list: Vec<Value> = frameworks::all()
        .iter()
        .map(|f| {
            json!({
                "id": f.id,
                "name": f.name,
                "version": f.version,
                "publisher": f.publisher,
                "controls": f.controls.len(),
            })
        })
        .collect();
    json!({ "frameworks": list })
}

/// `POST /v1/audit` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditBody {
    #[serde(default)]
    frameworks: Vec<String>,
}

fn audit_route(app: &App, request: &ApiRequest) -> ApiResponse {
    let ids = match request.method {
        "POST" => audit_body(request),
        _ => audit_query(request.query),
    };
    let ids = match ids {
        Ok(ids) => ids,
        Err(response) => return response,
    };
    let selected = match audit::select_frameworks(&ids) {
        Ok(s) => s,
        Err(e) => return ApiResponse::error(400, e.to_string()),
    };
    let Some(_slot) = app.audits.try_take() else {
        return ApiResponse::error(
            429,
            format!("{} audits are already running; retry later", app.audits.max),
        )
        .with_header("Retry-After", RETRY_AFTER_SECONDS.to_string());
    };
    match audit::run(&app.target, &selected) {
        Ok(report) => match serde_json::to_vec(&report) {
            Ok(bytes) => ApiResponse {
                status: 200,
                body: Value::Null,
                rendered: Some(bytes),
                headers: Vec::new(),
            },
            Err(e) => ApiResponse::error(500, format!("could not render the report: {e}")),
        },
        Err(e @ AuditError::BadRequest(_)) => ApiResponse::error(400, e.to_string()),
        Err(e @ AuditError::Credentials(_)) => ApiResponse::error(503, e.to_string()),
        Err(e) => ApiResponse::error(502, e.to_string()),
    }
}

fn audit_query(query: &str) -> Result<Vec<String>, ApiResponse> {
    let pairs = parse_query(query).map_err(|m| ApiResponse::error(400, m))?;
    let mut ids = Vec::new();
    for (key, value) in pairs {
        match key.as_str() {
            "framework" if !value.is_empty() => ids.push(value),
            "framework" => return Err(ApiResponse::error(400, "framework must not be empty")),
            other => {
                return Err(ApiResponse::error(
                    400,
                    format!(
                        "unknown query parameter {:?}; /v1/audit takes framework=ID (repeatable)",
                        clip(other)
                    ),
                ))
            }
        }
    }
    Ok(ids)
}

fn audit_body(request: &ApiRequest) -> Result<Vec<String>, ApiResponse> {
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let media_type = request.content_type.map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    if media_type.as_deref() != Some("application/json") {
        return Err(ApiResponse::error(
            415,
            "POST /v1/audit takes a JSON body: set Content-Type: application/json",
        ));
    }
    let text = std::str::from_utf8(request.body)
        .map_err(|_| ApiResponse::error(400, "the request body is not valid UTF-8"))?;
    let body: AuditBody = serde_json::from_str(text).map_err(|e| {
        ApiResponse::error(
            400,
            format!("invalid body: {e}; expected {{\"frameworks\": [\"cis-aws-3.0\", ...]}}"),
        )
    })?;
    Ok(body.frameworks)
}

/// Splits an `application/x-www-form-urlencoded` query into decoded pairs.
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        if pairs.len() == MAX_QUERY_PARAMS {
            return Err(format!(
                "too many query parameters (at most {MAX_QUERY_PARAMS})"
            ));
        }
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        let decode = |s: &str| {
            crate::collect::percent_decode(&s.replace('+', " "))
                .ok_or_else(|| format!("query parameter {s:?} is not valid percent-encoded UTF-8"))
        };
        pairs.push((decode(key)?, decode(value)?));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(
        method: &'a str,
        path: &'a str,
        query: &'a str,
        body: &'a [u8],
    ) -> ApiRequest<'a> {
        ApiRequest {
            method,
            path,
            query,
            content_type: Some("application/json"),
            authorization: None,
            body,
        }
    }

    fn demo() -> App {
        App::new(Target::demo(), 2, None)
    }

    #[test]
    fn routes_and_refusals() {
        let target = demo();
        let cases: &[(&str, &str, &str, &[u8], u16)] = &[
            ("GET", "/health", "", b"", 200),
            ("GET", "/ready", "", b"", 200),
            ("HEAD", "/health", "", b"", 200),
            ("GET", "/v1/frameworks", "", b"", 200),
            ("GET", "/v1/frameworks/isms-p-2023", "", b"", 200),
            ("GET", "/v1/frameworks/nope", "", b"", 404),
            ("GET", "/v1/checks", "", b"", 200),
            ("GET", "/v1/audit", "framework=cis-aws-3.0", b"", 200),
            ("GET", "/v1/audit", "framework=nope", b"", 400),
            ("GET", "/v1/audit", "framework=", b"", 400),
            ("GET", "/v1/audit", "color=red", b"", 400),
            ("GET", "/v1/audit", "framework=%ZZ", b"", 400),
            (
                "POST",
                "/v1/audit",
                "",
                br#"{"frameworks":["isms-p-2023"]}"#,
                200,
            ),
            ("POST", "/v1/audit", "", b"", 200),
            ("POST", "/v1/audit", "", b"{", 400),
            ("POST", "/v1/audit", "", br#"{"framework":["x"]}"#, 400),
            ("POST", "/v1/audit", "", br#"{"frameworks":["x"]}"#, 400),
            ("POST", "/v1/audit", "", b"\xff\xfe", 400),
            ("DELETE", "/v1/audit", "", b"", 405),
            ("HEAD", "/v1/audit", "", b"", 405),
            ("POST", "/health", "", b"", 405),
            ("GET", "/health", "x=1", b"", 400),
            ("GET", "/", "", b"", 404),
            ("GET", "/v2/audit", "", b"", 404),
        ];
        for (method, path, query, body, status) in cases {
            let response = handle(&target, &request(method, path, query, body));
            assert_eq!(
                response.status, *status,
                "{method} {path}?{query}: {}",
                response.body
            );
            if *status >= 400 {
                assert!(response.body["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()));
            }
        }
    }

    #[test]
    fn audit_responses_carry_the_report() {
        let target = demo();
        let response = handle(&target, &request("GET", "/v1/audit", "", b""));
        assert_eq!(
            serde_json::from_slice::<Value>(response.rendered.as_deref().expect("rendered report"))
                .expect("JSON")["frameworks"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn json_bodies_need_the_json_media_type() {
        let target = demo();
        let body = br#"{"frameworks":[]}"#;
        for (content_type, status) in [
            (Some("application/json"), 200),
            (Some("application/json; charset=utf-8"), 200),
            (Some("text/plain"), 415),
            (None, 415),
        ] {
            let req = ApiRequest {
                content_type,
                ..request("POST", "/v1/audit", "", body)
            };
            assert_eq!(handle(&target, &req).status, status, "{content_type:?}");
        }
    }

    #[test]
    fn tokens_guard_everything_but_health_and_readiness() {
        let token = ApiToken::new("0123456789abcdef-token").expect("valid");
        let app = App::new(Target::demo(), 2, Some(token));
        let cases = [
            ("/health", None, 200),
            ("/ready", None, 200),
            ("/v1/checks", None, 401),
            ("/v1/audit", Some("Bearer wrong-token-0123456789"), 401),
            ("/v1/audit", Some("Bearer 0123456789abcdef-token"), 200),
            ("/v1/frameworks", Some("Bearer 0123456789abcdef-token"), 200),
            ("/nope", None, 401),
            ("/nope", Some("Bearer 0123456789abcdef-token"), 404),
        ];
        for (path, authorization, status) in cases {
            let req = ApiRequest {
                authorization,
                ..request("GET", path, "", b"")
            };
            let response = handle(&app, &req);
            assert_eq!(response.status, status, "{path} {authorization:?}");
            if status == 401 {
                assert!(response
                    .headers
                    .iter()
                    .any(|(k, v)| *k == "WWW-Authenticate" && v.starts_with("Bearer")));
            }
        }
    }

    #[test]
    fn audits_beyond_the_limit_are_refused_at_once() {
        let app = App::new(Target::demo(), 1, None);
        let held = app.audits.try_take().expect("a free slot");
        let response = handle(&app, &request("GET", "/v1/audit", "", b""));
        assert_eq!(response.status, 429);
        assert!(response.headers.contains(&("Retry-After", "10".into())));
        assert_eq!(
            handle(&app, &request("GET", "/health", "", b"")).status,
            200
        );
        drop(held);
        assert_eq!(
            handle(&app, &request("GET", "/v1/audit", "", b"")).status,
            200
        );
        assert_eq!(
            app.audits.in_use(),
            0,
            "the slot is released after the audit"
        );
    }

    #[test]
    fn query_strings() {
        assert_eq!(
            parse_query("framework=cis-aws-3.0&framework=isms%2Dp-2023").expect("valid"),
            [
                ("framework".into(), "cis-aws-3.0".into()),
                ("framework".into(), "isms-p-2023".into())
            ]
        );
        assert_eq!(
            parse_query("a+b=c+d").expect("valid"),
            [("a b".into(), "c d".into())]
        );
        assert!(parse_query(&"a=1&".repeat(40)).is_err());
        assert!(parse_query("a=%FF").is_err());
    }
}
