use std::time::Duration;

use axum::{
    Json, Router,
    extract::{FromRef, Path, State},
    response::{Html, IntoResponse},
    routing::get,
};
use http::StatusCode;
use middleware_macros::handler;
use middleware_std::{
    Error, RequestId,
    auth::{AuthLayer, Principal},
    axum::Ctx,
};

#[derive(Clone)]
struct AppState {
    db: Db,
}

#[derive(Clone)]
struct Db;

impl FromRef<AppState> for Db {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

#[handler(request_id, timeout = Duration::from_millis(250))]
async fn list(State(_db): State<Db>, id: RequestId) -> Json<Vec<String>> {
    Json(vec![id.to_string()])
}

#[handler(timeout = "1.5s")]
async fn create(State(_state): State<AppState>, Json(body): Json<Vec<String>>) -> (StatusCode, Json<Vec<String>>) {
    (StatusCode::CREATED, Json(body))
}

#[handler(auth = AuthLayer::bearer("t0ken", Principal::new("ada")))]
async fn me(Ctx(who): Ctx<Principal>) -> Html<String> {
    Html(who.id().to_owned())
}

#[handler]
async fn find(Path(id): Path<u32>) -> Result<Json<u32>, Error> {
    if id == 0 { Err(Error::new(StatusCode::NOT_FOUND)) } else { Ok(Json(id)) }
}

#[handler]
async fn status(Path(id): Path<u32>) -> Result<String, StatusCode> {
    if id == 0 { Err(StatusCode::NOT_FOUND) } else { Ok(id.to_string()) }
}

#[handler]
async fn opaque() -> impl IntoResponse {
    (StatusCode::ACCEPTED, "accepted")
}

fn main() {
    let _: Router = Router::new()
        .route("/items", get(list).post(create))
        .route("/me", get(me))
        .route("/find/{id}", get(find))
        .route("/status/{id}", get(status))
        .route("/opaque", get(opaque))
        .with_state(AppState { db: Db });
}
