//! Which route a path names, and which methods it allows.
//!
//! Paths are matched literally: no decoding, so `a%2Fb` is an id with a `%` in it (and so a
//! 400), never a path with a slash in it.

use super::request::Method;

/// Prefix of the stream and HEAD route.
pub const PROGRESS: &str = "/api/brand-monitor/progress/";
/// The stream of many tasks (`?tasks=`) or of all.
pub const PROGRESS_MANY: &str = "/api/brand-monitor/progress";
/// The browser client module.
pub const CLIENT_JS: &str = "/client/sse-progress.js";
/// The health route.
pub const HEALTH: &str = "/api/brand-monitor/health";
/// The producer collection.
pub const TASKS: &str = "/api/brand-monitor/tasks";

/// A known route, borrowing the task id from the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET /`: a page that lists tasks and shows them live.
    Index,
    /// `/api/brand-monitor/progress/{id}`: stream (GET) or status (HEAD).
    Progress(&'a str),
    /// `/api/brand-monitor/progress`: the stream of many tasks (`?tasks=`), or of all.
    ProgressMany,
    /// `/client/sse-progress.js`: the browser client module.
    ClientJs,
    /// `/api/brand-monitor/health`
    Health,
    /// `/metrics`
    Metrics,
    /// `/api/brand-monitor/tasks`: list (GET), create (POST).
    Tasks,
    /// `/api/brand-monitor/tasks/{id}`: get, update, delete.
    Task(&'a str),
    /// `/api/brand-monitor/tasks/{id}/complete`
    Complete(&'a str),
    /// `/api/brand-monitor/tasks/{id}/fail`
    Fail(&'a str),
}

/// The route of `path`, or `None` (404).
pub fn route(path: &str) -> Option<Route<'_>> {
    if let Some(id) = path.strip_prefix(PROGRESS) {
        return (!id.contains('/')).then_some(Route::Progress(id));
    }
    if let Some(rest) = path.strip_prefix(TASKS) {
        if rest.is_empty() {
            return Some(Route::Tasks);
        }
        let rest = rest.strip_prefix('/')?;
        return match rest.split_once('/') {
            None => Some(Route::Task(rest)),
            Some((id, "complete")) => Some(Route::Complete(id)),
            Some((id, "fail")) => Some(Route::Fail(id)),
            Some(_) => None,
        };
    }
    match path {
        "/" => Some(Route::Index),
        PROGRESS_MANY => Some(Route::ProgressMany),
        CLIENT_JS => Some(Route::ClientJs),
        HEALTH => Some(Route::Health),
        "/metrics" => Some(Route::Metrics),
        _ => None,
    }
}

impl Route<'_> {
    /// The methods this route answers, as the `Allow` header lists them.
    pub fn allow(self) -> &'static str {
        match self {
            Route::Index | Route::Progress(_) | Route::ClientJs | Route::Health | Route::Metrics => {
                "GET, HEAD, OPTIONS"
            }
            // A stream of many tasks has no status in headers.
            Route::ProgressMany => "GET, OPTIONS",
            Route::Tasks => "GET, HEAD, POST, OPTIONS",
            Route::Task(_) => "GET, HEAD, PATCH, DELETE, OPTIONS",
            Route::Complete(_) | Route::Fail(_) => "POST, OPTIONS",
        }
    }

    /// Whether `method` is one of [`Route::allow`].
    pub fn allows(self, method: Method) -> bool {
        let name = match method {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other => return false,
        };
        self.allow().split(", ").any(|m| m == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_routes() {
        let table: &[(&str, Option<Route>)] = &[
            ("/api/brand-monitor/progress/t1", Some(Route::Progress("t1"))),
            ("/api/brand-monitor/progress/a%2Fb", Some(Route::Progress("a%2Fb"))),
            ("/api/brand-monitor/progress/a/b", None),
            ("/api/brand-monitor/progress/", Some(Route::Progress(""))),
            ("/api/brand-monitor/progress", Some(Route::ProgressMany)),
            ("/api/brand-monitor/progressx", None),
            ("/client/sse-progress.js", Some(Route::ClientJs)),
            ("/client/other.js", None),
            ("/api/brand-monitor/tasks", Some(Route::Tasks)),
            ("/api/brand-monitor/tasks/t1", Some(Route::Task("t1"))),
            ("/api/brand-monitor/tasks/t1/complete", Some(Route::Complete("t1"))),
            ("/api/brand-monitor/tasks/t1/fail", Some(Route::Fail("t1"))),
            ("/api/brand-monitor/tasks/t1/other", None),
            ("/api/brand-monitor/tasksx", None),
            ("/api/brand-monitor/health", Some(Route::Health)),
            ("/metrics", Some(Route::Metrics)),
            ("/", Some(Route::Index)),
            ("/nope", None),
        ];
        for (path, want) in table {
            assert_eq!(route(path), *want, "{path}");
        }
    }

    #[test]
    fn methods_follow_allow() {
        assert!(Route::Tasks.allows(Method::Post));
        assert!(!Route::Progress("x").allows(Method::Post));
        assert!(!Route::Complete("x").allows(Method::Get));
        assert!(!Route::Health.allows(Method::Other));
        assert!(Route::ProgressMany.allows(Method::Get) && !Route::ProgressMany.allows(Method::Head));
    }
}
