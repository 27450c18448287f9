//! The request mix: which route request number `i` takes, and what that route promises.
//!
//! Client and server both derive the route from the request number (the client sends it as
//! the request id `rel-<i>`), so the server-side checks know what each request was meant to do
//! without trusting the path alone (a normal stream and an aborted one share `/stream`).

use std::time::Duration;

use middleware_std::logging::RequestOutcome;

/// The whole-request budget of the stack (generous: normal requests must never hit it).
pub const BUDGET: Duration = Duration::from_secs(2);
/// The budget `/slow` requests ask for with `grpc-timeout` (the handler sleeps far longer).
pub const SLOW_BUDGET: Duration = Duration::from_millis(50);
/// How late a budget's `503` may be, past the deadline.
pub const SLOW_GRACE: Duration = Duration::from_millis(50);
/// `/stream` sends this many chunks of [`CHUNK`] bytes, one per millisecond.
pub const CHUNKS: u32 = 16;
pub const CHUNK: usize = 1024;
/// Clients that will hang up mid-body ask for a stream this long (in chunks), so that it is
/// still running when they do, however late their runtime gets to it.
pub const ABORT_CHUNKS: u32 = 500;
/// `/upload` bodies.
pub const UPLOAD: usize = 4096;
/// Request-body deadlines of `/upload`: idle and total.
pub const BODY_IDLE: Duration = Duration::from_millis(100);
pub const BODY_TOTAL: Duration = Duration::from_millis(400);

/// Every kind of request in the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Ok,
    PrivateOk,
    PrivateBad,
    Stream,
    Upload,
    NotFound,
    PanicHandler,
    PanicPoll,
    PanicBody,
    Slow,
    InnerError,
    AbortStream,
    AbortUpload,
    AbortPending,
    SlowLoris,
}

impl Route {
    pub const ALL: [Self; 15] = [
        Self::Ok,
        Self::PrivateOk,
        Self::PrivateBad,
        Self::Stream,
        Self::Upload,
        Self::NotFound,
        Self::PanicHandler,
        Self::PanicPoll,
        Self::PanicBody,
        Self::Slow,
        Self::InnerError,
        Self::AbortStream,
        Self::AbortUpload,
        Self::AbortPending,
        Self::SlowLoris,
    ];

    /// Per mille of the mix: 5 % panics, 5 % over budget, 5 % inner errors, 5 % aborted
    /// clients, 1 % slow-loris bodies, 79 % well-behaved traffic.
    const fn weight(self) -> u64 {
        match self {
            Self::Ok => 390,
            Self::PrivateOk => 150,
            Self::Stream => 100,
            Self::Upload => 60,
            Self::PrivateBad | Self::Slow | Self::InnerError => 50,
            Self::NotFound => 40,
            Self::AbortStream => 30,
            Self::PanicHandler | Self::PanicPoll => 17,
            Self::PanicBody => 16,
            Self::AbortUpload | Self::AbortPending | Self::SlowLoris => 10,
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }

    /// The route of request number `i` (a fixed hash of `i`, so runs are reproducible).
    pub fn of(i: u64) -> Self {
        let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let mut roll = (z ^ (z >> 31)) % 1000;
        for route in Self::ALL {
            if roll < route.weight() {
                return route;
            }
            roll -= route.weight();
        }
        unreachable!("the weights add up to 1000")
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Ok => "GET /ok",
            Self::PrivateOk => "GET /private (valid bearer)",
            Self::PrivateBad => "GET /private (bad credentials)",
            Self::Stream => "GET /stream",
            Self::Upload => "POST /upload",
            Self::NotFound => "GET /nope (404)",
            Self::PanicHandler => "panic in the handler call",
            Self::PanicPoll => "panic in a later poll",
            Self::PanicBody => "panic in the body stream",
            Self::Slow => "over budget (grpc-timeout 50m)",
            Self::InnerError => "inner service error",
            Self::AbortStream => "client aborts mid response body",
            Self::AbortUpload => "client aborts mid request body",
            Self::AbortPending => "client hangs up before the response",
            Self::SlowLoris => "slow-loris request body",
        }
    }

    /// What the client must see, in words (the client checks it).
    pub const fn promise(self) -> &'static str {
        match self {
            Self::Ok => "200 `ok`",
            Self::PrivateOk => "200 greeting the principal",
            Self::PrivateBad => "401 + `WWW-Authenticate`",
            Self::Stream => "200, 16 × 1 KiB",
            Self::Upload => "200 `4096`",
            Self::NotFound => "404 problem details",
            Self::PanicHandler | Self::PanicPoll | Self::InnerError => "500",
            Self::PanicBody => "200 head, then a body error",
            Self::Slow => "503 ≤ deadline + 50 ms",
            Self::AbortStream => "200 head + first chunk, then hang up",
            Self::AbortUpload | Self::AbortPending => "(hangs up; sees nothing)",
            Self::SlowLoris => "408",
        }
    }

    /// The access record's outcome this route must end with.
    pub const fn outcome(self) -> RequestOutcome {
        match self {
            Self::Ok
            | Self::PrivateOk
            | Self::PrivateBad
            | Self::Stream
            | Self::Upload
            | Self::NotFound
            // Panic recovery sits inside logging: the log sees the 500 it made.
            | Self::PanicHandler
            | Self::PanicPoll
            // The request-body layer sees hyper's `incomplete message` body error, cancels
            // the context with `dropped` (the check on the watchers demands it) and passes the
            // error on; the handler answers 400, whose small body hyper still takes to its end
            // (into a socket the peer closed). The log sees the end of a response, not a drop:
            // `completed`, status 400, with `cancel_cause=dropped` (it logs `disconnected` only
            // for a response or body dropped before its end).
            | Self::AbortUpload => RequestOutcome::Completed,
            // The body's panic reaches the log as the body's error.
            Self::PanicBody | Self::InnerError => RequestOutcome::Error,
            // The client's own `grpc-timeout` is the tighter deadline: its expiry is the client's
            // outcome (WARN), not the server's timeout (ERROR).
            Self::Slow => RequestOutcome::ClientDeadline,
            Self::SlowLoris => RequestOutcome::TimedOut,
            Self::AbortStream | Self::AbortPending => RequestOutcome::Disconnected,
        }
    }

    /// Whether the connection cannot be reused after this request.
    pub const fn closes(self) -> bool {
        matches!(
            self,
            Self::PanicBody
                | Self::AbortStream
                | Self::AbortUpload
                | Self::AbortPending
                | Self::SlowLoris
        )
    }
}

/// Outcome codes in the per-request records (0 means "no record").
pub const OUTCOMES: [RequestOutcome; 7] = [
    RequestOutcome::Completed,
    RequestOutcome::Error,
    RequestOutcome::Panicked,
    RequestOutcome::TimedOut,
    RequestOutcome::Cancelled,
    RequestOutcome::Disconnected,
    RequestOutcome::ClientDeadline,
];

pub fn outcome_code(name: &str) -> u64 {
    OUTCOMES
        .iter()
        .position(|o| o.as_str() == name)
        .map_or(8, |p| p as u64 + 1)
}

pub fn outcome_name(code: u64) -> &'static str {
    match code {
        0 => "none",
        c => usize::try_from(c - 1)
            .ok()
            .and_then(|c| OUTCOMES.get(c))
            .map_or("unknown", |o| o.as_str()),
    }
}
