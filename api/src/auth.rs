//! `GET /auth/whoami` on the query service (how the dashboard checks a key at sign-in) and
//! `GET /auth/me` on the dashboard server (who the app is signed in as).

use serde::{Deserialize, Serialize};

/// The key presented as `Authorization: Bearer`: its name and scopes, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhoAmI {
    /// The key's name in the keys file (`anonymous` when authentication is off).
    pub name: String,
    /// `ingest`, `query`.
    pub scopes: Vec<String>,
    /// False when the service runs with `LOGJET_AUTH=off` (every key, and none, is accepted).
    pub authentication: bool,
}

/// The dashboard's signed-in user, for the app's header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// The key's name (sign-in) or the proxy's user header; `None` when sign-in is off.
    pub user: Option<String>,
    /// Where "Sign out" goes: `/signout` (a POST) for sign-in sessions, the authenticating
    /// proxy's URL (a link) in proxy mode, `None` when there is nothing to sign out of.
    pub signout: Option<String>,
    /// Whether `signout` is the dashboard's own `POST /signout`.
    pub signout_post: bool,
}
