//! Authentication and roles (`--auth-file`).
//!
//! Every RPC but health checking carries `authorization: Bearer TOKEN`; the token names a
//! role. One tower layer in front of every service of the server ([`AuthLayer`]) checks
//! the token and the role an RPC needs before the call reaches a handler, and hands the
//! caller's role on in the request's extensions; the RPCs that run statements (Execute,
//! Query) then check each statement's kind against it with [`authorize`]. An RPC the
//! layer does not know needs `admin`, so a new one cannot slip past unguarded.
//! Tokens are never logged.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use sluice_sql::{Statement, StatementKind};
use tonic::Status;

/// What a token may do; each role may do everything the ones below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Pull and push queries, SHOW, DESCRIBE, EXPLAIN, PRINT, Consume.
    Reader,
    /// A reader that may also append: INSERT, DELETE, BulkInsert, Produce.
    Writer,
    /// Everything, DDL and persistent queries included.
    Admin,
}

impl Role {
    fn parse(s: &str) -> Option<Role> {
        match s {
            "reader" => Some(Role::Reader),
            "writer" => Some(Role::Writer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    #[error("cannot read the auth file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {problem}")]
    Line {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error(
        "the auth file {0} holds no token: each line is `ROLE TOKEN`, ROLE one of reader, writer, admin"
    )]
    Empty(PathBuf),
}

/// Shortest token accepted: a guessable token is no authentication.
const MIN_TOKEN_CHARS: usize = 16;

/// The tokens of an auth file, with their roles.
#[derive(Clone)]
pub struct Tokens {
    entries: Vec<(Vec<u8>, Role)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens themselves.
        write!(f, "Tokens({} entries)", self.entries.len())
    }
}

impl Tokens {
    pub fn load(path: &Path) -> Result<Tokens, AuthFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Tokens::parse(&text, path)
    }

    /// Lines of `ROLE TOKEN`; blank lines and lines starting with `#` are skipped.
    pub fn parse(text: &str, path: &Path) -> Result<Tokens, AuthFileError> {
        let mut entries: Vec<(Vec<u8>, Role)> = Vec::new();
        let mut lines_of: Vec<usize> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let bad = |problem: String| AuthFileError::Line {
                path: path.to_path_buf(),
                line,
                problem,
            };
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = l.split_whitespace().collect();
            let [role, token] = fields[..] else {
                return Err(bad(format!(
                    "expected `ROLE TOKEN`, found {} fields",
                    fields.len()
                )));
            };
            let role = Role::parse(role).ok_or_else(|| {
                bad(format!(
                    "unknown role '{role}' (roles: reader, writer, admin)"
                ))
            })?;
            if token.chars().count() < MIN_TOKEN_CHARS {
                return Err(bad(format!(
                    "the token is shorter than {MIN_TOKEN_CHARS} characters"
                )));
            }
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(bad(
                    "a token is printable ASCII (it travels in an HTTP header)".into(),
                ));
            }
            if let Some(k) = entries.iter().position(|(t, _)| t == token.as_bytes()) {
                return Err(bad(format!("the token is also on line {}", lines_of[k])));
            }
            entries.push((token.as_bytes().to_vec(), role));
            lines_of.push(line);
        }
        if entries.is_empty() {
            return Err(AuthFileError::Empty(path.to_path_buf()));
        }
        Ok(Tokens { entries })
    }

    /// The role of `token`, compared against every entry in constant time per byte, so
    /// the answer's timing does not say how much of a guess was right.
    fn role_of(&self, token: &[u8]) -> Option<Role> {
        let mut found = None;
        for (t, role) in &self.entries {
            let mut diff = (t.len() != token.len()) as u8;
            for (a, b) in t.iter().zip(token.iter().cycle()) {
                diff |= a ^ b;
            }
            if diff == 0 {
                found = Some(*role);
            }
        }
        found
    }
}

/// The role an RPC needs at least (`None`: no authentication); statements are checked
/// further by the handler. Anything not listed needs admin.
fn rpc_role(path: &str) -> Option<Role> {
    if path.starts_with("/grpc.health.v1.Health/") {
        return None;
    }
    Some(match path {
        "/sluice.v1.Sluice/Execute"
        | "/sluice.v1.Sluice/Query"
        | "/sluice.v1.Sluice/Pull"
        | "/sluice.v1.Sluice/Consume"
        | "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        | "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo" => Role::Reader,
        "/sluice.v1.Sluice/BulkInsert" | "/sluice.v1.Sluice/Produce" => Role::Writer,
        _ => Role::Admin,
    })
}

/// The role a statement needs, and its kind as error messages name it.
pub fn statement_role(kind: &StatementKind) -> (Role, &'static str) {
    use StatementKind as K;
    match kind {
        K::Select(_) => (Role::Reader, "SELECT"),
        K::Show(_) => (Role::Reader, "SHOW"),
        K::Describe { .. } | K::DescribeFunction(_) => (Role::Reader, "DESCRIBE"),
        K::Explain(_) => (Role::Reader, "EXPLAIN"),
        K::Print { .. } => (Role::Reader, "PRINT"),
        // Request-scoped: they change nothing on the server.
        K::Set { .. } => (Role::Reader, "SET"),
        K::Unset { .. } => (Role::Reader, "UNSET"),
        K::InsertValues { .. } => (Role::Writer, "INSERT"),
        K::Delete { .. } => (Role::Writer, "DELETE"),
        K::CreateSource { .. } => (Role::Admin, "CREATE STREAM/TABLE"),
        K::CreateAs { .. } => (Role::Admin, "CREATE ... AS SELECT"),
        K::InsertSelect { .. } => (Role::Admin, "INSERT INTO ... SELECT"),
        K::Alter { .. } => (Role::Admin, "ALTER"),
        K::Drop { .. } => (Role::Admin, "DROP"),
        K::Terminate(_) => (Role::Admin, "TERMINATE"),
        K::CreateType { .. } => (Role::Admin, "CREATE TYPE"),
        K::DropType { .. } => (Role::Admin, "DROP TYPE"),
    }
}

/// Whether the caller (the role the layer put in the request) may run `stmt`.
pub fn authorize(role: Option<Role>, stmt: &Statement) -> Result<(), Status> {
    let (needed, what) = statement_role(&stmt.kind);
    match role {
        Some(r) if r >= needed => Ok(()),
        Some(r) => Err(Status::permission_denied(format!(
            "role {} may not run {what} statements (they need {})",
            r.name(),
            needed.name()
        ))),
        // Only a request that bypassed the layer has no role: refuse rather than guess.
        None => Err(Status::permission_denied(
            "the request carries no role (internal error: it bypassed authentication)",
        )),
    }
}

/// Authenticates every request before it reaches a service (see the module comment).
/// Without tokens (no `--auth-file`) every caller is admin.
#[derive(Clone)]
pub struct AuthLayer {
    tokens: Option<Arc<Tokens>>,
}

impl AuthLayer {
    pub fn new(tokens: Option<Tokens>) -> AuthLayer {
        AuthLayer {
            tokens: tokens.map(Arc::new),
        }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            tokens: self.tokens.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    tokens: Option<Arc<Tokens>>,
}

impl<S> Auth<S> {
    /// The caller's role, or the status refusing the call.
    fn check(&self, path: &str, headers: &http::HeaderMap) -> Result<Option<Role>, Status> {
        let Some(tokens) = &self.tokens else {
            return Ok(Some(Role::Admin));
        };
        let Some(needed) = rpc_role(path) else {
            return Ok(None);
        };
        let rpc = path.rsplit('/').next().unwrap_or(path);
        let token = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated(format!(
                    "{rpc} needs an `authorization: Bearer TOKEN` header (the shell: --token or SLUICE_TOKEN)"
                ))
            })?;
        let role = tokens
            .role_of(token.trim().as_bytes())
            .ok_or_else(|| Status::unauthenticated("the bearer token is not valid"))?;
        if role < needed {
            return Err(Status::permission_denied(format!(
                "role {} may not call {rpc} (it needs {})",
                role.name(),
                needed.name()
            )));
        }
        Ok(Some(role))
    }
}

pub(crate) type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// The inner service of a layer, to call: the one that was polled ready is the one
/// called (tower's contract), and a clone takes its place for the next call.
pub(crate) fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}

impl<S, B, R> tower_service::Service<http::Request<B>> for Auth<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        match self.check(req.uri().path(), req.headers()) {
            Ok(role) => {
                if let Some(role) = role {
                    req.extensions_mut().insert(role);
                }
                let mut inner = take_ready(&mut self.inner);
                Box::pin(inner.call(req))
            }
            Err(status) => {
                tracing::info!(path = %req.uri().path(), code = ?status.code(), "call refused");
                let response = status.into_http::<R>();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Tokens, AuthFileError> {
        Tokens::parse(text, Path::new("auth.txt"))
    }

    #[test]
    fn an_auth_file_maps_tokens_to_roles_and_names_a_bad_line() {
        let t =
            parse("# team tokens\n\nreader rrrrrrrrrrrrrrrr1\nadmin  aaaaaaaaaaaaaaaa1\n").unwrap();
        assert_eq!(t.role_of(b"rrrrrrrrrrrrrrrr1"), Some(Role::Reader));
        assert_eq!(t.role_of(b"aaaaaaaaaaaaaaaa1"), Some(Role::Admin));
        assert_eq!(t.role_of(b"aaaaaaaaaaaaaaaa"), None);
        assert_eq!(t.role_of(b""), None);
        for (text, want) in [
            ("reader short", "line 1: the token is shorter than 16"),
            ("owner aaaaaaaaaaaaaaaa1", "line 1: unknown role 'owner'"),
            ("\nreader", "line 2: expected `ROLE TOKEN`, found 1 fields"),
            (
                "reader aaaaaaaaaaaaaaaa1\nadmin aaaaaaaaaaaaaaaa1",
                "line 2: the token is also on line 1",
            ),
            ("# nothing\n", "holds no token"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains("aaaaaaaaaaaaaaaa1"), "a token in an error: {e}");
        }
        assert!(!format!("{t:?}").contains("rrrr"));
    }

    #[test]
    fn each_statement_kind_needs_its_role() {
        let stmt = |sql: &str| sluice_sql::parse(sql).unwrap().remove(0);
        let role_needed = |sql: &str| statement_role(&stmt(sql).kind).0;
        assert_eq!(role_needed("SELECT * FROM t WHERE k = 1;"), Role::Reader);
        assert_eq!(role_needed("SHOW QUERIES;"), Role::Reader);
        assert_eq!(role_needed("INSERT INTO s (k) VALUES (1);"), Role::Writer);
        assert_eq!(role_needed("DROP STREAM s;"), Role::Admin);
        assert_eq!(role_needed("INSERT INTO s SELECT * FROM t;"), Role::Admin);
        let e = authorize(Some(Role::Writer), &stmt("TERMINATE ALL;")).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(e.message().contains("role writer may not run TERMINATE"));
        assert!(authorize(Some(Role::Admin), &stmt("TERMINATE ALL;")).is_ok());
        assert!(authorize(None, &stmt("SHOW QUERIES;")).is_err());
    }
}
