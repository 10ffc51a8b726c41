//! `Route`: a method and a path template, as API Gateway's route keys name them
//! (`GET /auth/status/{session_id}`). Every endpoint declares its routes; the local API, the
//! fixture test, the template check and the contract check all read them from there.

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }

    /// Whether a request with `method` is served by a route of this method: a GET route also
    /// answers HEAD (RFC 9110 §9.3.2), with the GET's headers and no body.
    pub fn serves(self, method: &str) -> bool {
        method.eq_ignore_ascii_case(self.as_str())
            || (self == Method::Get && method.eq_ignore_ascii_case("HEAD"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    pub method: Method,
    /// The path template, with `{name}` for a path parameter.
    pub path: &'static str,
}

impl Route {
    pub const fn get(path: &'static str) -> Self {
        Route {
            method: Method::Get,
            path,
        }
    }

    pub const fn post(path: &'static str) -> Self {
        Route {
            method: Method::Post,
            path,
        }
    }

    /// Whether API Gateway's `routeKey` names this route (`HEAD` keys name GET routes).
    pub fn has_key(&self, route_key: &str) -> bool {
        route_key
            .split_once(' ')
            .is_some_and(|(method, path)| path == self.path && self.method.serves(method))
    }

    /// Matches a request path against the template; returns the path parameters.
    pub fn match_path(&self, path: &str) -> Option<BTreeMap<String, String>> {
        match_path(self.path, path)
    }
}

/// The path parameters when `path` matches the route template `template` (`{name}` is one
/// non-empty segment, taken as sent: API Gateway does not decode path parameters). The local
/// API's routes and the template's (`devstack::deployed`) match the same way.
pub fn match_path(template: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    let mut t = template.trim_start_matches('/').split('/');
    let mut p = path.trim_start_matches('/').split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(params),
            (Some(ts), Some(ps)) if ts.starts_with('{') && ts.ends_with('}') => {
                if ps.is_empty() {
                    return None;
                }
                params.insert(ts[1..ts.len() - 1].to_owned(), ps.to_owned());
            }
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return None,
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method.as_str(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_whole_paths_and_capture_parameters() {
        let status = Route::get("/auth/status/{session_id}");
        let p = status.match_path("/auth/status/abc").unwrap();
        assert_eq!(p["session_id"], "abc");
        assert!(status.match_path("/auth/status/").is_none());
        assert!(status.match_path("/auth/status/a/b").is_none());
        let request = Route::post("/auth/request");
        assert!(request.match_path("/auth/request").unwrap().is_empty());
        assert!(request.match_path("/auth/requests").is_none());
    }

    #[test]
    fn a_route_key_names_its_route_and_head_names_a_get_route() {
        let status = Route::get("/auth/status/{session_id}");
        assert_eq!(status.to_string(), "GET /auth/status/{session_id}");
        assert!(status.has_key("GET /auth/status/{session_id}"));
        assert!(status.has_key("HEAD /auth/status/{session_id}"));
        assert!(!status.has_key("POST /auth/status/{session_id}"));
        assert!(!Route::post("/auth/request").has_key("HEAD /auth/request"));
    }
}
