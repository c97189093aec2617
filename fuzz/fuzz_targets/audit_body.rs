//! The JSON body of `POST /v1/audit` (`{"frameworks": [...]}`, unknown
//! fields refused), through `server::routes::handle` on the demo inventory.
//! Any body is answered 200 (an audit) or 400 (with a message); an accepted
//! body runs exactly the frameworks it named, or all when it named none.
#![no_main]

use std::sync::OnceLock;

use dspm_audit::audit::Target;
use dspm_audit::server::routes::{handle, ApiRequest, App};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| App::new(Target::demo(), 2, None))
}

fuzz_target!(|data: &[u8]| {
    let request = ApiRequest {
        method: "POST",
        path: "/v1/audit",
        query: "",
        content_type: Some("application/json"),
        authorization: None,
        body: data,
    };
    let response = handle(app(), &request);
    match response.status {
        200 => {
            assert!(response.sensitive);
            let ran = response.body["frameworks"].as_array().map(Vec::len);
            let named = serde_json::from_slice::<Value>(data)
                .ok()
                .and_then(|v| v["frameworks"].as_array().map(Vec::len));
            if let (Some(ran), Some(named)) = (ran, named) {
                assert!(named == 0 || ran <= named, "ran {ran} of {named} named");
            }
        }
        400 => assert!(response.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())),
        other => panic!("POST /v1/audit answered {other}: {}", response.body),
    }
    assert_eq!(app().audits.in_use(), 0);
});
