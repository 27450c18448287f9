//! The config-only layers: [`TimeoutLayer`], [`RequestBodyTimeoutLayer`],
//! [`PropagateDeadlineLayer`].

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, StatusCode};
use tower_layer::Layer;

use super::{
    body::BodyDeadlines,
    future::OnTimeout,
    header::DeadlineFormat,
    service::{PropagateDeadline, RequestBodyTimeout, Timeout},
};

/// The `grpc-timeout` header name.
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// Applies a whole-request budget to a service, and optionally deadlines on the response body.
///
/// [`TimeoutLayer::new`] answers an expired request with `503 Service Unavailable`,
/// [`TimeoutLayer::gateway`] with `504 Gateway Timeout`. See the [module docs](super) for an
/// example.
#[derive(Clone, Debug)]
#[must_use]
pub struct TimeoutLayer {
    pub(crate) budget: Duration,
    pub(crate) on_timeout: OnTimeout,
    pub(crate) inbound: Option<(HeaderName, DeadlineFormat)>,
    pub(crate) inbound_floor: Duration,
    pub(crate) response_body: BodyDeadlines,
}

/// The default of [`TimeoutLayer::inbound_floor`]: inbound deadlines shorter than this are
/// raised to it.
pub const DEFAULT_INBOUND_FLOOR: Duration = Duration::from_millis(5);

impl TimeoutLayer {
    /// A budget of `budget` per request; an expired request gets `503 Service Unavailable`.
    pub const fn new(budget: Duration) -> Self {
        Self {
            budget,
            on_timeout: OnTimeout::new(StatusCode::SERVICE_UNAVAILABLE),
            inbound: None,
            inbound_floor: DEFAULT_INBOUND_FLOOR,
            response_body: BodyDeadlines {
                idle: None,
                total: None,
            },
        }
    }

    /// The preset for gateways and proxies: an expired request gets `504 Gateway Timeout`.
    pub const fn gateway(budget: Duration) -> Self {
        Self::new(budget).with_status_code(StatusCode::GATEWAY_TIMEOUT)
    }

    /// The status of the timeout response.
    pub const fn with_status_code(mut self, status: StatusCode) -> Self {
        self.on_timeout.status = status;
        self
    }

    /// A fixed `text/plain` body for the timeout response, instead of the problem details
    /// rendered by the request's [`Renderer`](crate::Renderer) (RFC 9457 JSON by default).
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.on_timeout.body = Some(body.into());
        self
    }

    /// Lets callers shorten the budget with a `grpc-timeout` header (never lengthen it: the
    /// budget given to [`new`](Self::new) is the server maximum).
    pub fn inbound_grpc_timeout(self) -> Self {
        self.inbound_header(GRPC_TIMEOUT, DeadlineFormat::GrpcTimeout)
    }

    /// Lets callers shorten the budget with the header `name` in `format`. A malformed or
    /// repeated header is ignored, and [`MalformedDeadlineHeader`](super::MalformedDeadlineHeader)
    /// is put into the request's context.
    pub fn inbound_header(mut self, name: HeaderName, format: DeadlineFormat) -> Self {
        self.inbound = Some((name, format));
        self
    }

    /// The shortest inbound deadline honoured as sent ([`DEFAULT_INBOUND_FLOOR`], 5 ms, by
    /// default): a shorter one (`grpc-timeout: 1n`, `0m`) is *raised* to the floor, not
    /// ignored, so the request still runs briefly under the client's (raised) deadline, and
    /// when that expires the expiry is reported as the client's own (see
    /// [`Expiry::is_by_client`](crate::Expiry::is_by_client)), which an access log tells apart
    /// from the server's budget running out. Raising, not ignoring: a client that sent a tiny
    /// deadline has given up soon after, so the full server budget would be wasted work. The
    /// floor never lengthens the server's budget: the budget in force is
    /// `min(max(header, floor), budget)`. `Duration::ZERO` honours every inbound deadline.
    ///
    /// ```
    /// use std::{convert::Infallible, time::Duration};
    /// use http::{Request, Response};
    /// use http_body_util::BodyExt;
    /// use middleware_std::{RequestExt, timeout::TimeoutLayer};
    /// use tower::{ServiceBuilder, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let svc = ServiceBuilder::new()
    ///     .layer(
    ///         TimeoutLayer::new(Duration::from_secs(1))
    ///             .inbound_grpc_timeout()
    ///             .inbound_floor(Duration::from_millis(20)),
    ///     )
    ///     .service(service_fn(|req: Request<String>| async move {
    ///         let left = req.try_context().and_then(|cx| cx.remaining()).unwrap();
    ///         Ok::<_, Infallible>(Response::new(format!("{}", left.as_millis())))
    ///     }));
    ///
    /// // `1n` is below the floor: the handler gets 20 ms, not one nanosecond.
    /// let req = Request::builder().header("grpc-timeout", "1n").body(String::new()).unwrap();
    /// let res = svc.oneshot(req).await.unwrap();
    /// let body = res.into_body().collect().await.unwrap().to_bytes();
    /// assert_eq!(body, "20");
    /// # }
    /// ```
    pub const fn inbound_floor(mut self, floor: Duration) -> Self {
        self.inbound_floor = floor;
        self
    }

    /// The longest wait for the next frame of the response body; after it the body ends with a
    /// [`BodyTimeoutError`](super::BodyTimeoutError).
    pub const fn response_body_idle(mut self, idle: Duration) -> Self {
        self.response_body.idle = Some(idle);
        self
    }

    /// The longest time the response body may stream, counted from the response head; after it
    /// the body ends with a [`BodyTimeoutError`](super::BodyTimeoutError).
    pub const fn response_body_total(mut self, total: Duration) -> Self {
        self.response_body.total = Some(total);
        self
    }

    /// The configured budget (the server maximum).
    #[must_use]
    pub const fn budget(&self) -> Duration {
        self.budget
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout::from_layer(inner, self.clone())
    }
}

/// Deadlines on reading the request body: idle (the longest wait for the next frame) and
/// total. When one passes, the body yields a [`BodyTimeoutError`](super::BodyTimeoutError) to
/// the handler and the response becomes `408 Request Timeout` with `Connection: close`.
///
/// When the body itself fails (the client went away or reset the stream mid-body), the
/// request's [`Context`](crate::Context), if an outer layer made one, is cancelled with
/// [`CancelCause::Dropped`](crate::CancelCause::Dropped) and the error reaches the handler
/// unchanged; the response is the handler's.
///
/// It wraps the request body, so the inner service sees
/// `Request<TimeoutBody<B>>`. See the [module docs](super) for an example.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct RequestBodyTimeoutLayer {
    pub(crate) deadlines: BodyDeadlines,
}

impl RequestBodyTimeoutLayer {
    /// Both deadlines.
    pub const fn new(idle: Duration, total: Duration) -> Self {
        Self {
            deadlines: BodyDeadlines {
                idle: Some(idle),
                total: Some(total),
            },
        }
    }

    /// Only the idle deadline.
    pub const fn idle(idle: Duration) -> Self {
        Self {
            deadlines: BodyDeadlines {
                idle: Some(idle),
                total: None,
            },
        }
    }

    /// Only the total deadline.
    pub const fn total(total: Duration) -> Self {
        Self {
            deadlines: BodyDeadlines {
                idle: None,
                total: Some(total),
            },
        }
    }
}

impl<S> Layer<S> for RequestBodyTimeoutLayer {
    type Service = RequestBodyTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestBodyTimeout::from_layer(inner, *self)
    }
}

/// The client side: stamps the remaining budget of the request's [`Context`](crate::Context)
/// on the outgoing request (`grpc-timeout` by default) and enforces it.
///
/// Put the server request's context into the outgoing request's extensions
/// (`out.extensions_mut().insert(cx.clone())`); a request without a context or without a
/// deadline goes out untouched. A request whose deadline has already passed is not sent: it
/// gets the timeout response (`504 Gateway Timeout` by default) at once. See the
/// [module docs](super) for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct PropagateDeadlineLayer {
    pub(crate) header: HeaderName,
    pub(crate) format: DeadlineFormat,
    pub(crate) on_timeout: OnTimeout,
}

impl PropagateDeadlineLayer {
    /// Stamps `grpc-timeout`; an expired call gets `504 Gateway Timeout`.
    pub const fn new() -> Self {
        Self {
            header: GRPC_TIMEOUT,
            format: DeadlineFormat::GrpcTimeout,
            on_timeout: OnTimeout::new(StatusCode::GATEWAY_TIMEOUT),
        }
    }

    /// Stamps the header `name` in `format` instead.
    pub fn with_header(mut self, name: HeaderName, format: DeadlineFormat) -> Self {
        self.header = name;
        self.format = format;
        self
    }

    /// The status of the response made up when the budget runs out.
    pub const fn with_status_code(mut self, status: StatusCode) -> Self {
        self.on_timeout.status = status;
        self
    }
}

impl Default for PropagateDeadlineLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for PropagateDeadlineLayer {
    type Service = PropagateDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PropagateDeadline::from_layer(inner, self.clone())
    }
}

// ----- stack introspection -----

/// Writes a body deadline setting when it is set.
fn describe_body_deadlines(
    entry: &mut middleware_core::describe::Entry,
    prefix: &'static str,
    deadlines: BodyDeadlines,
) {
    if let Some(idle) = deadlines.idle {
        entry.setting(format!("{prefix}idle"), format_args!("{idle:?}"));
    }
    if let Some(total) = deadlines.total {
        entry.setting(format!("{prefix}total"), format_args!("{total:?}"));
    }
}

impl middleware_core::Describe for TimeoutLayer {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        let entry = description.layer("TimeoutLayer");
        entry
            .setting("budget", format_args!("{:?}", self.budget))
            .setting("status", self.on_timeout.status.as_u16());
        if let Some((header, format)) = &self.inbound {
            entry
                .setting("inbound", header)
                .setting("inbound_format", format_args!("{format:?}"))
                .setting("inbound_floor", format_args!("{:?}", self.inbound_floor));
        }
        describe_body_deadlines(entry, "response_body_", self.response_body);
    }
}

impl middleware_core::Describe for RequestBodyTimeoutLayer {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        let entry = description.layer("RequestBodyTimeoutLayer");
        describe_body_deadlines(entry, "", self.deadlines);
    }
}

impl middleware_core::Describe for PropagateDeadlineLayer {
    fn describe(&self, description: &mut middleware_core::describe::Description) {
        description
            .layer("PropagateDeadlineLayer")
            .setting("header", &self.header)
            .setting("format", format_args!("{:?}", self.format))
            .setting("status", self.on_timeout.status.as_u16());
    }
}
