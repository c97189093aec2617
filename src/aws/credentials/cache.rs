//! Credentials fetched from a source, cached for every thread, and refreshed
//! ahead of their expiry by one thread at a time.
//!
//! The schedule, for a set fetched at `fetched` that expires at `expires`
//! (`lifetime = expires - fetched`):
//!
//! - **refresh ahead** once `now >= expires - min(5 min, lifetime / 2)`.
//!   Platform credentials live an hour or more, so that is five minutes
//!   before expiry; a set that lives less than ten minutes is refreshed
//!   half-way through its life instead, so that a source that hands out
//!   short-lived credentials is not asked again on every call.
//! - **usable** while `now < expires - min(10 s, refresh-ahead)`: a
//!   request signed with them must still be valid when AWS receives it.
//!
//! While one thread refreshes, the others keep using the current set if it
//! is still usable, and wait for that one refresh if it is not: N callers at
//! the refresh point cause one fetch, never N. A refresh that fails while
//! the current set is still usable logs a warning and is tried again after
//! `min(30 s, a quarter of the usable time left)` (at least one second);
//! once the set is no longer usable, callers get the refresh error.
//!
//! Times come from the system clock in whole seconds, like AWS's
//! `Expiration`. Credentials without an expiration are kept for good.

use std::panic::AssertUnwindSafe;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use log::{debug, warn};

use super::{Credentials, CredentialsError, CredentialsProvider};
use crate::timestamp::Timestamp;

/// Refresh this long before expiry, at most.
pub const REFRESH_AHEAD_SECS: i64 = 5 * 60;
/// Stop using a set this long before it expires, at most.
pub const EXPIRY_MARGIN_SECS: i64 = 10;
/// After a failed refresh while still usable, wait at most this long.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(30);
const RETRY_AFTER_MIN: Duration = Duration::from_secs(1);

/// Something that can fetch a fresh set of credentials (STS, the container
/// endpoint). It is called by one thread at a time.
pub trait Fetch: Send + Sync {
    fn fetch(&self) -> Result<Credentials, CredentialsError>;

    /// The source and role, for the startup log: never a secret.
    fn describe(&self) -> String;
}

/// When a fetched set is refreshed and until when it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Unix seconds from which a refresh is due.
    pub refresh_at: i64,
    /// Unix seconds from which the set is no longer handed out.
    pub usable_until: i64,
}

impl Schedule {
    /// The schedule of a set fetched at `fetched` that expires at `expires`
    /// (both Unix seconds); `None` when it expires no later than `fetched`.
    pub fn of(fetched: i64, expires: Option<i64>) -> Option<Schedule> {
        let Some(expires) = expires else {
            return Some(Schedule {
                refresh_at: i64::MAX,
                usable_until: i64::MAX,
            });
        };
        let lifetime = expires - fetched;
        if lifetime <= 0 {
            return None;
        }
        let ahead = REFRESH_AHEAD_SECS.min(lifetime / 2);
        Some(Schedule {
            refresh_at: expires - ahead,
            usable_until: expires - EXPIRY_MARGIN_SECS.min(ahead),
        })
    }
}

struct Current {
    credentials: Credentials,
    schedule: Schedule,
}

#[derive(Default)]
struct State {
    current: Option<Current>,
    /// A thread is fetching right now.
    refreshing: bool,
    /// Counts finished fetches, so that a waiter knows one ended.
    generation: u64,
    /// The last fetch's failure, cleared by a success.
    last_error: Option<CredentialsError>,
    /// After a failed refresh while usable: no new attempt before this.
    retry_after: Option<Instant>,
}

/// A [`Fetch`] source behind a shared cache; see the module documentation.
pub struct CachedCredentials<F: Fetch> {
    source: F,
    state: Mutex<State>,
    fetched: Condvar,
}

impl<F: Fetch> CachedCredentials<F> {
    pub fn new(source: F) -> CachedCredentials<F> {
        CachedCredentials {
            source,
            state: Mutex::new(State::default()),
            fetched: Condvar::new(),
        }
    }

    pub fn source(&self) -> &F {
        &self.source
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls the source; a panicking source becomes an error, so that the
    /// `refreshing` flag is always cleared and waiters always woken.
    fn fetch_once(&self) -> Result<Credentials, CredentialsError> {
        std::panic::catch_unwind(AssertUnwindSafe(|| self.source.fetch())).unwrap_or_else(|_| {
            Err(CredentialsError(format!(
                "fetching credentials from {} failed unexpectedly",
                self.source.describe()
            )))
        })
    }
}

impl<F: Fetch> CredentialsProvider for CachedCredentials<F> {
    fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let mut state = self.lock();
        loop {
            let now = Timestamp::now().0;
            let usable = match &state.current {
                Some(c) if now < c.schedule.refresh_at => return Ok(c.credentials.clone()),
                Some(c) => now < c.schedule.usable_until,
                None => false,
            };
            let backing_off = state.retry_after.is_some_and(|t| Instant::now() < t);
            if usable && (state.refreshing || backing_off) {
                if let Some(c) = &state.current {
                    return Ok(c.credentials.clone());
                }
            }
            if state.refreshing {
                // Nothing usable: wait for the fetch in flight, then take
                // its outcome rather than fetching again.
                let generation = state.generation;
                while state.refreshing && state.generation == generation {
                    state = self.fetched.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                let now = Timestamp::now().0;
                if let Some(c) = state.current.as_ref() {
                    if now < c.schedule.usable_until {
                        return Ok(c.credentials.clone());
                    }
                }
                if let Some(e) = &state.last_error {
                    return Err(e.clone());
                }
                continue;
            }

            // This thread refreshes.
            state.refreshing = true;
            drop(state);
            let result = self.fetch_once();
            // Waiters wake once this lock is released, with the outcome
            // already stored.
            state = self.lock();
            state.refreshing = false;
            state.generation += 1;
            self.fetched.notify_all();
            let now = Timestamp::now().0;
            let error = match result {
                Ok(credentials) => {
                    let expires = credentials.expiration.map(|t| t.0);
                    match Schedule::of(now, expires) {
                        Some(schedule) => {
                            debug!(
                                "AWS credentials from {} fetched{}",
                                self.source.describe(),
                                credentials
                                    .expiration
                                    .map(|t| format!(", valid until {t}"))
                                    .unwrap_or_default()
                            );
                            state.current = Some(Current {
                                credentials: credentials.clone(),
                                schedule,
                            });
                            state.last_error = None;
                            state.retry_after = None;
                            return Ok(credentials);
                        }
                        None => CredentialsError(format!(
                            "credentials from {} had already expired when they arrived \
                             (expiration {}, local clock {}): check the system clock",
                            self.source.describe(),
                            credentials
                                .expiration
                                .map(|t| t.to_string())
                                .unwrap_or_default(),
                            Timestamp(now)
                        )),
                    }
                }
                Err(e) => e,
            };
            state.last_error = Some(error.clone());
            if let Some(c) = state.current.as_ref() {
                if now < c.schedule.usable_until {
                    let left = Duration::from_secs((c.schedule.usable_until - now) as u64);
                    let wait = (left / 4).clamp(RETRY_AFTER_MIN, RETRY_AFTER_MAX);
                    warn!(
                        "refreshing AWS credentials from {} failed; still using the current ones \
                         (they expire at {}), next attempt in {} s: {error}",
                        self.source.describe(),
                        c.credentials
                            .expiration
                            .map(|t| t.to_string())
                            .unwrap_or_default(),
                        wait.as_secs()
                    );
                    let credentials = c.credentials.clone();
                    state.retry_after = Some(Instant::now() + wait);
                    return Ok(credentials);
                }
            }
            return Err(error);
        }
    }

    fn describe(&self) -> String {
        self.source.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn schedule_table() {
        // (lifetime s, refresh this many s before expiry, stop using this many s before)
        let cases: &[(i64, Option<(i64, i64)>)] = &[
            (3600, Some((300, 10))),
            (900, Some((300, 10))),
            (600, Some((300, 10))),
            (300, Some((150, 10))),
            (30, Some((15, 10))),
            (10, Some((5, 5))),
            (1, Some((0, 0))),
            (0, None),
            (-5, None),
        ];
        let fetched = 1_000_000;
        for (lifetime, want) in cases {
            let got = Schedule::of(fetched, Some(fetched + lifetime));
            let want = want.map(|(ahead, margin)| Schedule {
                refresh_at: fetched + lifetime - ahead,
                usable_until: fetched + lifetime - margin,
            });
            assert_eq!(got, want, "lifetime {lifetime}");
        }
        assert_eq!(
            Schedule::of(fetched, None).map(|s| s.refresh_at),
            Some(i64::MAX)
        );
    }

    struct Counting {
        calls: AtomicUsize,
        lifetime: i64,
        fail_from: usize,
        delay: Duration,
    }

    impl Fetch for Counting {
        fn fetch(&self) -> Result<Credentials, CredentialsError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(self.delay);
            if n >= self.fail_from {
                return Err(CredentialsError("source down".into()));
            }
            Ok(Credentials {
                access_key_id: format!("ASIA{n}"),
                secret_access_key: "s".into(),
                session_token: Some("t".into()),
                expiration: Some(Timestamp(Timestamp::now().0 + self.lifetime)),
            })
        }
        fn describe(&self) -> String {
            "counting".into()
        }
    }

    #[test]
    fn concurrent_first_fetch_is_single_flight() {
        let cache = Arc::new(CachedCredentials::new(Counting {
            calls: AtomicUsize::new(0),
            lifetime: 3600,
            fail_from: usize::MAX,
            delay: Duration::from_millis(200),
        }));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let cache = cache.clone();
                std::thread::spawn(move || cache.credentials().map(|c| c.access_key_id))
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().expect("joins"), Ok("ASIA0".to_string()));
        }
        assert_eq!(cache.source().calls.load(Ordering::SeqCst), 1);
    }

    struct PanicsOnce(AtomicUsize);

    impl Fetch for PanicsOnce {
        fn fetch(&self) -> Result<Credentials, CredentialsError> {
            if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("source bug");
            }
            Ok(Credentials {
                access_key_id: "ASIAAFTERPANIC".into(),
                secret_access_key: "s".into(),
                session_token: Some("t".into()),
                expiration: Some(Timestamp(Timestamp::now().0 + 3600)),
            })
        }
        fn describe(&self) -> String {
            "panicky".into()
        }
    }

    #[test]
    fn a_panicking_source_is_an_error_and_does_not_wedge_the_cache() {
        let cache = CachedCredentials::new(PanicsOnce(AtomicUsize::new(0)));
        let err = cache.credentials().expect_err("panicked");
        assert!(err.0.contains("panicky"), "{err}");
        assert_eq!(
            cache.credentials().map(|c| c.access_key_id),
            Ok("ASIAAFTERPANIC".to_string())
        );
    }

    #[test]
    fn failed_first_fetch_is_shared_by_waiters_and_named() {
        let cache = Arc::new(CachedCredentials::new(Counting {
            calls: AtomicUsize::new(0),
            lifetime: 3600,
            fail_from: 0,
            delay: Duration::from_millis(200),
        }));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let cache = cache.clone();
                std::thread::spawn(move || cache.credentials())
            })
            .collect();
        for t in threads {
            let err = t.join().expect("joins").expect_err("source is down");
            assert!(err.0.contains("source down"), "{err}");
        }
        assert!(cache.source().calls.load(Ordering::SeqCst) <= 4);
    }
}
