//! The HTTP server: `tiny_http` on a fixed pool of worker threads.
//!
//! Each worker takes a request, reads at most [`routes::MAX_BODY_BYTES`] of
//! body, routes it, and writes one log line. A handler that panics is
//! isolated: its request gets a 500 and the worker keeps serving.

pub mod routes;

use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use log::{error, info, warn};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::audit::Target;
use crate::config::ServerSettings;
use routes::{ApiRequest, ApiResponse, MAX_BODY_BYTES};

/// Starts the server and serves until the process ends.
pub fn serve(settings: &ServerSettings, target: Target) -> Result<(), String> {
    let server = Server::http(&settings.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    info!(
        "dspm-audit {} listening on {} with {} workers; auditing {}",
        env!("CARGO_PKG_VERSION"),
        settings.listen,
        settings.workers,
        target.describe()
    );
    let server = Arc::new(server);
    let target = Arc::new(target);
    let workers: Vec<_> = (0..settings.workers)
        .map(|i| {
            let server = server.clone();
            let target = target.clone();
            std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || worker(&server, &target))
                .map_err(|e| format!("cannot start worker thread: {e}"))
        })
        .collect::<Result<_, _>>()?;
    for worker in workers {
        let _ = worker.join();
    }
    Ok(())
}

fn worker(server: &Server, target: &Target) {
    loop {
        match server.recv() {
            Ok(request) => serve_one(target, request),
            Err(e) => {
                warn!("accepting a request failed: {e}");
            }
        }
    }
}

fn serve_one(target: &Target, mut request: Request) {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let path = path.to_string();

    let response = match read_body(&mut request) {
        Err(response) => response,
        Ok(body) => {
            let content_type = header(&request, "Content-Type");
            let api_request = ApiRequest {
                method: &method,
                path: &path,
                query,
                content_type: content_type.as_deref(),
                body: &body,
            };
            catch_unwind(AssertUnwindSafe(|| routes::handle(target, &api_request))).unwrap_or_else(
                |_| {
                    error!("{method} {path}: the handler panicked; answering 500");
                    ApiResponse::error(500, "internal error; the server keeps running")
                },
            )
        }
    };
    let status = response.status;
    let head_only = *request.method() == Method::Head;
    if let Err(e) = request.respond(to_http(response, head_only)) {
        warn!("{method} {path}: could not send the response: {e}");
    }
    info!(
        "{method} {path} {status} {} ms",
        started.elapsed().as_millis()
    );
}

fn header(request: &Request, name: &'static str) -> Option<String> {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str().to_string())
}

fn read_body(request: &mut Request) -> Result<Vec<u8>, ApiResponse> {
    let too_large = || {
        ApiResponse::error(
            413,
            format!("request body larger than {MAX_BODY_BYTES} bytes"),
        )
    };
    if request.body_length().is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiResponse::error(400, format!("could not read the request body: {e}")))?;
    if body.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(body)
}

fn to_http(response: ApiResponse, head_only: bool) -> Response<std::io::Cursor<Vec<u8>>> {
    let mut body = serde_json::to_vec(&response.body).unwrap_or_default();
    body.push(b'\n');
    if head_only {
        body.clear();
    }
    let mut http = Response::from_data(body)
        .with_status_code(response.status)
        .with_header(fixed_header("Content-Type", "application/json"))
        .with_header(fixed_header("X-Content-Type-Options", "nosniff"));
    if response.sensitive {
        http = http.with_header(fixed_header("Cache-Control", "no-store"));
    }
    http
}

fn fixed_header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes())
        .expect("static header names and values are valid")
}
