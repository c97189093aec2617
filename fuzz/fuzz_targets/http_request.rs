//! The API's HTTP/1.1 request parser, `server::http::parse_request`, on the
//! bytes a connection delivered, with the production limits and with tiny
//! ones (so the limit paths are reached too). Properties:
//! - a complete request never claims more bytes than were given, and its
//!   body is exactly the declared `Content-Length` after the head;
//! - the bytes it consumed parse to the same request on their own;
//! - every shorter prefix of a complete request is merely incomplete (a
//!   request must not be refused or cut depending on how TCP split it);
//! - a refusal carries a 4xx/5xx status and a message.
#![no_main]

use dspm_audit::server::http::{expects_continue, parse_request, Limits, Parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tiny = Limits {
        head_bytes: 64,
        headers: 3,
        body_bytes: 16,
        ..Limits::default()
    };
    for limits in [Limits::default(), tiny] {
        check(data, &limits);
    }
    let _ = expects_continue(data);
});

fn check(data: &[u8], limits: &Limits) {
    match parse_request(data, limits) {
        Parse::Incomplete => {}
        Parse::Refused(e) => {
            assert!((400..600).contains(&e.status), "{e:?}");
            assert!(!e.message.is_empty());
        }
        Parse::Complete {
            head,
            body,
            consumed,
        } => {
            assert!(
                consumed <= data.len(),
                "consumed {consumed} of {}",
                data.len()
            );
            let head_end = consumed - body.len() - 4;
            assert_eq!(&data[head_end..head_end + 4], b"\r\n\r\n");
            assert_eq!(&data[head_end + 4..consumed], &body[..]);
            assert!(head_end <= limits.head_bytes);
            assert!(head.headers.len() <= limits.headers);
            assert_eq!(head.body_length().ok(), Some(body.len()));
            assert!(body.len() <= limits.body_bytes);
            assert!(head.target.starts_with('/'));
            let _ = head.keep_alive();

            let again = parse_request(&data[..consumed], limits);
            assert!(
                matches!(&again, Parse::Complete { head: h, body: b, consumed: c }
                    if *h == head && *b == body && *c == consumed),
                "the consumed bytes alone parse differently: {again:?}"
            );
            // The prefixes where a boundary could be misjudged: inside the
            // head terminator and just short of the body's end.
            let mut cuts = vec![head_end, head_end + 1, head_end + 2, head_end + 3];
            cuts.push(consumed.saturating_sub(1));
            cuts.push(consumed / 2);
            for cut in cuts.into_iter().filter(|c| *c < consumed) {
                let partial = parse_request(&data[..cut], limits);
                assert!(
                    partial == Parse::Incomplete,
                    "a {cut}-byte prefix of a complete {consumed}-byte request is {partial:?}"
                );
            }
        }
    }
}
