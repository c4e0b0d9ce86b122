//! Graceful shutdown: after a shutdown signal the server drains. New API requests get 503
//! (`server_shutting_down`) and `/health` answers 503 `draining`, so load balancers stop routing
//! here, while the requests already admitted run on. When the last of them is done the server
//! exits; if the grace period runs out first, the ones still running are ended — a stream with
//! an error event and `[DONE]`, a whole answer with a 503 — and their sequences are cancelled.
//!
//! Every admitted request holds an [`InFlight`] guard from the moment it is admitted until its
//! answer (a streamed body included) is over; the drain waits for the count to reach zero.

use std::sync::Arc;

use tokio::sync::watch;

use crate::error::ApiError;

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Admitting requests.
    Serving,
    /// A shutdown signal came: refusing new requests, letting admitted ones finish.
    Draining,
    /// The grace period is over: answers still running are being ended.
    Cancelling,
}

/// The phase and the number of requests admitted and not yet answered, changed together.
#[derive(Debug, Clone, Copy)]
struct Status {
    phase: Phase,
    in_flight: usize,
}

/// The server's drain state (one per server, in [`crate::AppState`]).
#[derive(Debug)]
pub struct Drain {
    status: watch::Sender<Status>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            status: watch::Sender::new(Status {
                phase: Phase::Serving,
                in_flight: 0,
            }),
        }
    }
}

impl Drain {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.status.borrow().phase
    }

    /// Requests admitted and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.status.borrow().in_flight
    }

    /// Admits a new request (its guard), or refuses it with 503 once draining. The check and
    /// the count change together, so a request is either counted before the drain looks or
    /// refused.
    pub fn admit(self: &Arc<Self>) -> Result<InFlight, ApiError> {
        let mut admitted = false;
        self.status.send_if_modified(|s| {
            admitted = s.phase == Phase::Serving;
            if admitted {
                s.in_flight += 1;
            }
            admitted
        });
        if admitted {
            Ok(InFlight {
                drain: Arc::clone(self),
            })
        } else {
            Err(ApiError::shutting_down())
        }
    }

    /// Counts one more holder of work inside an already admitted request (the answer a handler
    /// returns, which may stream on after the handler is done). Never refused: the request's own
    /// guard keeps the count above zero until this one exists.
    pub fn hold(self: &Arc<Self>) -> InFlight {
        self.status.send_modify(|s| s.in_flight += 1);
        InFlight {
            drain: Arc::clone(self),
        }
    }

    /// Starts draining (a second call changes nothing).
    pub fn begin(&self) {
        self.status.send_if_modified(|s| {
            let changed = s.phase == Phase::Serving;
            if changed {
                s.phase = Phase::Draining;
            }
            changed
        });
    }

    /// Ends the grace period: answers still running end now.
    pub fn cancel_in_flight(&self) {
        self.status.send_if_modified(|s| {
            let changed = s.phase != Phase::Cancelling;
            s.phase = Phase::Cancelling;
            changed
        });
    }

    /// Resolves once no admitted request is left.
    pub async fn idle(&self) {
        let mut status = self.status.subscribe();
        // The sender lives as long as `self`, so waiting cannot fail.
        let _ = status.wait_for(|s| s.in_flight == 0).await;
    }

    /// Resolves once the grace period is over (never while serving or draining).
    pub async fn cancelled(&self) {
        let mut status = self.status.subscribe();
        let _ = status.wait_for(|s| s.phase == Phase::Cancelling).await;
    }
}

/// An admitted request, counted until dropped (a request's handler holds one, and the streamed
/// body it returns another: see [`Drain::hold`]).
#[derive(Debug)]
pub struct InFlight {
    drain: Arc<Drain>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.drain
            .status
            .send_modify(|s| s.in_flight = s.in_flight.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admits_until_draining_and_goes_idle_when_the_last_guard_drops() {
        let drain = Arc::new(Drain::default());
        let first = drain.admit().expect("serving admits");
        let body = drain.hold();
        assert_eq!(drain.in_flight(), 2);
        drain.begin();
        assert_eq!(drain.phase(), Phase::Draining);
        let refused = drain.admit().expect_err("draining refuses");
        assert_eq!(refused.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.code, Some("server_shutting_down"));
        assert_eq!(drain.in_flight(), 2, "a refusal is not counted");
        drop(first);
        let idle = tokio::time::timeout(std::time::Duration::from_millis(50), drain.idle());
        assert!(idle.await.is_err(), "one answer is still streaming");
        drop(body);
        tokio::time::timeout(std::time::Duration::from_secs(1), drain.idle())
            .await
            .expect("idle once every guard is gone");
    }

    #[tokio::test]
    async fn cancelled_resolves_only_after_the_grace_period() {
        let drain = Arc::new(Drain::default());
        drain.begin();
        let early = tokio::time::timeout(std::time::Duration::from_millis(50), drain.cancelled());
        assert!(early.await.is_err(), "draining is not cancelling");
        drain.cancel_in_flight();
        tokio::time::timeout(std::time::Duration::from_secs(1), drain.cancelled())
            .await
            .expect("cancelled after cancel_in_flight");
        drain.begin();
        assert_eq!(drain.phase(), Phase::Cancelling, "begin does not go back");
    }
}
