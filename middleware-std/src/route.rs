//! `http.route`, shared by the access span (`logging`) and the metrics attributes (`metrics`).

use http::Request;

/// `http.route`: the route template axum matched (`/users/{id}`), when the router put its
/// `MatchedPath` into the request (the layer runs inside the router); `None` without the `axum`
/// feature.
#[allow(clippy::missing_const_for_fn, unused_variables)] // not const without `axum`
pub(crate) fn route<B>(req: &Request<B>) -> Option<&str> {
    #[cfg(feature = "axum")]
    {
        req.extensions()
            .get::<axum::extract::MatchedPath>()
            .map(axum::extract::MatchedPath::as_str)
    }
    #[cfg(not(feature = "axum"))]
    {
        None
    }
}
