//! The probe of the kit's body checks: [`BodyProbe`], an inner service whose response body
//! ([`ProbeBody`]) is scripted frame by frame and released one frame at a time.

use std::{
    fmt,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context as TaskContext, Poll, Waker},
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tower_service::Service;

use super::ProbeError;

/// One scripted frame.
#[derive(Clone, Debug)]
pub(super) enum Item {
    Data(Bytes),
    Trailers(HeaderMap),
    Error(u64),
    /// Panics in `poll_frame`; the body is then done (`None`), as a body's state after a panic
    /// is.
    Panic,
}

#[derive(Debug, Default)]
struct Script {
    items: Vec<Item>,
    /// Items the body may hand out.
    released: usize,
    /// Items handed out.
    next: usize,
    /// The code of the error the body yielded; it yields it again on every later poll, so a
    /// layer that passes frames through keeps the rule and one that ends by itself is caught.
    failed: Option<u64>,
    waker: Option<Waker>,
}

/// The kit's handle on one scripted body: releases its frames one at a time.
#[derive(Clone, Debug)]
pub(super) struct Gate(Arc<Mutex<Script>>);

impl Gate {
    pub(super) fn new(items: Vec<Item>) -> Self {
        Self(Arc::new(Mutex::new(Script {
            items,
            ..Script::default()
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Script> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn release(&self, count: usize) {
        let mut script = self.lock();
        script.released = (script.released + count).min(script.items.len());
        if let Some(waker) = script.waker.take() {
            waker.wake();
        }
    }

    pub(super) fn release_all(&self) {
        self.release(usize::MAX / 2);
    }

    pub(super) fn handed_out(&self) -> usize {
        self.lock().next
    }
}

/// The response body of [`BodyProbe`]: frames the kit releases one at a time, an exact
/// `size_hint`, an accurate `is_end_stream`, and a scripted error that it yields again on every
/// poll after the first (it never ends cleanly once it failed).
///
/// `ProbeBody::default()` is an empty body.
#[derive(Default)]
pub struct ProbeBody {
    pub(super) gate: Option<Gate>,
}

impl fmt::Debug for ProbeBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(stringify!(ProbeBody))
            .field("scripted", &self.gate.is_some())
            .finish_non_exhaustive()
    }
}

impl Body for ProbeBody {
    type Data = Bytes;
    type Error = ProbeError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ProbeError>>> {
        let Some(gate) = &self.gate else {
            return Poll::Ready(None);
        };
        let mut script = gate.lock();
        if let Some(code) = script.failed {
            return Poll::Ready(Some(Err(ProbeError(code))));
        }
        if script.next == script.items.len() {
            return Poll::Ready(None);
        }
        if script.next == script.released {
            script.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let item = script.items[script.next].clone();
        script.next += 1;
        Poll::Ready(Some(match item {
            Item::Data(data) => Ok(Frame::data(data)),
            Item::Trailers(trailers) => Ok(Frame::trailers(trailers)),
            Item::Error(code) => {
                script.failed = Some(code);
                Err(ProbeError(code))
            }
            Item::Panic => {
                script.next = script.items.len();
                drop(script);
                panic!(
                    "the conformance kit's probe body panics here on purpose, to see what the \
                     layer makes of it"
                );
            }
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.gate.as_ref().is_none_or(|gate| {
            let script = gate.lock();
            script.failed.is_none() && script.next == script.items.len()
        })
    }

    fn size_hint(&self) -> SizeHint {
        let Some(gate) = &self.gate else {
            return SizeHint::with_exact(0);
        };
        let script = gate.lock();
        let remaining = script.items[script.next..]
            .iter()
            .map(|item| match item {
                Item::Data(data) => data.len() as u64,
                Item::Trailers(_) | Item::Error(_) | Item::Panic => 0,
            })
            .sum();
        SizeHint::with_exact(remaining)
    }
}

#[derive(Debug, Default)]
struct BodyProbeState {
    /// The status and body of the next response.
    next: Mutex<Option<(StatusCode, Gate)>>,
}

/// The inner service of the kit's body checks: always ready, it answers each request with the
/// status and [`ProbeBody`] the kit scripted for it.
#[derive(Clone, Debug, Default)]
pub struct BodyProbe {
    state: Arc<BodyProbeState>,
}

impl BodyProbe {
    pub(super) fn script(&self, status: StatusCode, gate: Gate) {
        *self
            .state
            .next
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((status, gate));
    }
}

impl Service<Request<String>> for BodyProbe {
    type Response = Response<ProbeBody>;
    type Error = ProbeError;
    type Future = std::future::Ready<Result<Response<ProbeBody>, ProbeError>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), ProbeError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<String>) -> Self::Future {
        let scripted = self
            .state
            .next
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let (status, gate) = scripted.unwrap_or_else(|| (StatusCode::OK, Gate::new(Vec::new())));
        let mut res = Response::new(ProbeBody { gate: Some(gate) });
        *res.status_mut() = status;
        std::future::ready(Ok(res))
    }
}
