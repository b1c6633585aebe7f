//! The five APIs this binary serves: ids, port order, documents, and their generated pieces.

use std::sync::OnceLock;

use axum::Router;
use axum::http::Method;
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
    /// The document's `info.title` (`供热缴费小程序 API`), known without building the document.
    pub title: &'static str,
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
            title: generated::$module::openapi::TITLE,
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

impl Api {
    /// The API's [`OperationTable`], built on first use and kept for the life of the process.
    pub fn table(&self) -> &'static OperationTable {
        static TABLES: [OnceLock<OperationTable>; APIS.len()] = [const { OnceLock::new() }; APIS.len()];
        let at = APIS.iter().position(|a| a.id == self.id).expect("an API of APIS");
        TABLES[at].get_or_init(|| OperationTable::new(*self))
    }
}

/// An API's operations, found from a request's method and path as its generated router finds
/// them: mock mode picks the operation's example with it, the request log and the metrics name
/// the operation with it. The request log looks a request up once and hands what it found on
/// ([`crate::server::Routed`]), so a path is matched once outside axum's router.
pub struct OperationTable {
    /// Every operation's method and operationId, in the order of `Operation::ALL`.
    operations: Vec<(Method, &'static str)>,
    /// Path template → the operations on it (indices into `operations`), matched as axum's
    /// router matches (both are `matchit`).
    paths: matchit::Router<Vec<usize>>,
    /// The templates without parameters, looked up before `paths`: a hash lookup costs a
    /// third of a walk down the tree, and a path without parameters matches only itself.
    exact: rustc_hash::FxHashMap<&'static str, Vec<usize>>,
}

impl OperationTable {
    fn new(api: Api) -> OperationTable {
        let mut operations = Vec::new();
        let mut templates: Vec<(&'static str, Vec<usize>)> = Vec::new();
        for (method, template, id) in (api.operations)() {
            match templates.iter_mut().find(|(t, _)| *t == template) {
                Some((_, indices)) => indices.push(operations.len()),
                None => templates.push((template, vec![operations.len()])),
            }
            operations.push((Method::from_bytes(method.as_bytes()).expect("generated methods are HTTP methods"), id));
        }
        let mut paths = matchit::Router::new();
        let mut exact = rustc_hash::FxHashMap::default();
        for (template, indices) in templates {
            if !template.contains('{') {
                exact.insert(template, indices.clone());
            }
            paths.insert(template, indices).expect("the generated router accepted the same templates");
        }
        OperationTable { operations, paths, exact }
    }

    /// The operation a request with `method` and `path` is for (its index), `None` for a path
    /// or method no operation has. HEAD finds the GET operation, as axum's router answers it.
    pub fn find(&self, method: &Method, path: &str) -> Option<usize> {
        let method = if method == Method::HEAD { &Method::GET } else { method };
        let candidates = match self.exact.get(path) {
            Some(indices) => indices,
            None => self.paths.at(path).ok()?.value,
        };
        candidates.iter().copied().find(|&index| self.operations[index].0 == method)
    }

    /// The operationId of operation `index`.
    pub fn id(&self, index: usize) -> &'static str {
        self.operations[index].1
    }

    /// How many operations the API has.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// Whether the API has no operation (none of the five).
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }
}
