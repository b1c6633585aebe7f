//! The five APIs this binary serves: ids, port order, documents, and their generated pieces.

use axum::Router;
use axum::response::Response;
use generated::runtime::{ExampleRef, Rejection};

use crate::mock::MockSource;

/// One API as the binary needs it; every function here is generated code.
#[derive(Clone, Copy)]
pub struct Api {
    /// The API id (`heating`): the spec's file stem, the `--api` value, the mocks folder.
    pub id: &'static str,
    /// Its place in port order: it listens on `--port-base` + `offset` (heating 3000 … o2o 3004).
    pub offset: u16,
    /// Every documented response example (`generated::<api>::examples::EXAMPLES`).
    pub examples: &'static [ExampleRef],
    /// `(method, path template, operationId)` of every operation.
    pub operations: fn() -> Vec<(&'static str, &'static str, &'static str)>,
    /// The published OpenAPI document as served (utoipa, built from the generated code, with
    /// every documented example in the spec's order).
    pub published: fn() -> serde_json::Value,
    /// The generated router over the example-answering implementation.
    pub mock_router: fn(MockSource) -> Router,
    /// The API's own rendering of a refused request.
    pub render_rejection: fn(&Rejection) -> Response,
}

macro_rules! api {
    ($module:ident, $offset:expr) => {
        Api {
            id: stringify!($module),
            offset: $offset,
            examples: generated::$module::examples::EXAMPLES,
            operations: || {
                generated::$module::Operation::ALL.iter().map(|o| (o.method(), o.path(), o.id())).collect()
            },
            published: generated::$module::openapi::published,
            mock_router: |source| {
                generated::$module::router(std::sync::Arc::new(generated::$module::examples::Examples(source)))
            },
            render_rejection: generated::$module::render_rejection,
        }
    };
}

/// The five APIs in port order.
pub const APIS: [Api; 5] = [
    api!(heating, 0),
    api!(points, 1),
    api!(community, 2),
    api!(charging, 3),
    api!(o2o, 4),
];

/// The API with this id.
pub fn by_id(id: &str) -> Option<Api> {
    APIS.iter().copied().find(|a| a.id == id)
}
