//! Roles and permissions: the one place that says which role may do what. The route table
//! (`api::routes::ROUTES`) names the permission each route needs; the auth middleware
//! compares it with the caller's set. The matrix is written out in the crate README.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including user management.
    Admin,
    /// Manages cameras and their streams, reads analytics, owns API tokens.
    Operator,
    /// Reads cameras and plays their streams.
    Viewer,
    /// An integration account: its sessions may only manage its API tokens; the tokens do
    /// the work.
    ApiOnly,
}

impl Role {
    /// Every role, for tests and docs.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Viewer, Role::ApiOnly];

    /// The name stored in the database and sent in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::ApiOnly => "api_only",
        }
    }

    /// The permissions this role grants. API tokens get a subset of their owner's role
    /// (for `api_only`: the subset [`Role::token_grantable`] lists).
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Admin => &[
                CamerasRead,
                CamerasWrite,
                StreamsPlay,
                AnalyticsRead,
                UsersManage,
                TokensManage,
                RecordingsRead,
                RecordingsDelete,
                AuditRead,
                RetentionManage,
                ClusterManage,
            ],
            Role::Operator => &[
                CamerasRead,
                CamerasWrite,
                StreamsPlay,
                AnalyticsRead,
                TokensManage,
                RecordingsRead,
                RecordingsDelete,
            ],
            Role::Viewer => &[CamerasRead, StreamsPlay, RecordingsRead],
            Role::ApiOnly => &[TokensManage],
        }
    }

    /// The permissions this role's users may put on their API tokens.
    pub fn token_grantable(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Admin => &[
                CamerasRead,
                CamerasWrite,
                StreamsPlay,
                AnalyticsRead,
                UsersManage,
                RecordingsRead,
                RecordingsDelete,
                AuditRead,
                RetentionManage,
                ClusterManage,
            ],
            Role::Operator | Role::ApiOnly => &[
                CamerasRead,
                CamerasWrite,
                StreamsPlay,
                AnalyticsRead,
                RecordingsRead,
                RecordingsDelete,
            ],
            Role::Viewer => &[CamerasRead, StreamsPlay, RecordingsRead],
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownName(s.to_owned()))
    }
}

impl TryFrom<String> for Role {
    type Error = UnknownName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A name that is not a known role or permission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown name {0:?}")]
pub struct UnknownName(pub String);

/// One thing a route may require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Permission {
    /// List and read cameras, their live status.
    #[serde(rename = "cameras:read")]
    CamerasRead,
    /// Create, change, delete cameras; rotate stream keys.
    #[serde(rename = "cameras:write")]
    CamerasWrite,
    /// Get signed playback URLs.
    #[serde(rename = "streams:play")]
    StreamsPlay,
    /// Read analytics and storage usage.
    #[serde(rename = "analytics:read")]
    AnalyticsRead,
    /// Manage users.
    #[serde(rename = "users:manage")]
    UsersManage,
    /// Manage one's own API tokens (sessions only).
    #[serde(rename = "tokens:manage")]
    TokensManage,
    /// List recordings, their timeline, signed download and VOD URLs; add bookmarks; read
    /// the retention policy.
    #[serde(rename = "recordings:read")]
    RecordingsRead,
    /// Delete recordings; change the retention policy of one's company and its cameras.
    #[serde(rename = "recordings:delete")]
    RecordingsDelete,
    /// Read the audit log of recording access.
    #[serde(rename = "audit:read")]
    AuditRead,
    /// Change the default retention policy (every company's fallback) and run retention
    /// passes: admins only.
    #[serde(rename = "retention:manage")]
    RetentionManage,
    /// Read the cluster's members, leader and placement; drain and remove nodes: admins
    /// only.
    #[serde(rename = "cluster:manage")]
    ClusterManage,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 11] = [
        Permission::CamerasRead,
        Permission::CamerasWrite,
        Permission::StreamsPlay,
        Permission::AnalyticsRead,
        Permission::UsersManage,
        Permission::TokensManage,
        Permission::RecordingsRead,
        Permission::RecordingsDelete,
        Permission::AuditRead,
        Permission::RetentionManage,
        Permission::ClusterManage,
    ];

    /// The name stored and sent (`cameras:read`).
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::CamerasRead => "cameras:read",
            Permission::CamerasWrite => "cameras:write",
            Permission::StreamsPlay => "streams:play",
            Permission::AnalyticsRead => "analytics:read",
            Permission::UsersManage => "users:manage",
            Permission::TokensManage => "tokens:manage",
            Permission::RecordingsRead => "recordings:read",
            Permission::RecordingsDelete => "recordings:delete",
            Permission::AuditRead => "audit:read",
            Permission::RetentionManage => "retention:manage",
            Permission::ClusterManage => "cluster:manage",
        }
    }
}

impl FromStr for Permission {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownName(s.to_owned()))
    }
}

/// A set of permissions as stored: names separated by spaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions(pub Vec<Permission>);

impl Permissions {
    /// Whether `p` is in the set.
    pub fn contains(&self, p: Permission) -> bool {
        self.0.contains(&p)
    }

    /// The stored form.
    pub fn to_db(&self) -> String {
        self.0
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl TryFrom<String> for Permissions {
    type Error = UnknownName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.split_whitespace()
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Permissions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
            assert_eq!(
                serde_json::to_value(r).unwrap(),
                serde_json::json!(r.as_str())
            );
        }
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(p));
            assert_eq!(
                serde_json::to_value(p).unwrap(),
                serde_json::json!(p.as_str())
            );
        }
        let set = Permissions(vec![Permission::CamerasRead, Permission::StreamsPlay]);
        assert_eq!(Permissions::try_from(set.to_db()), Ok(set));
        assert!(Permissions::try_from("cameras:read root".to_owned()).is_err());
    }

    #[test]
    fn grantable_is_within_role_except_tokens() {
        // A token may never carry tokens:manage, and never more than its owner's role
        // (api_only owners excepted: their tokens are how they work).
        for r in Role::ALL {
            for p in r.token_grantable() {
                assert_ne!(*p, Permission::TokensManage);
                if r != Role::ApiOnly {
                    assert!(r.permissions().contains(p), "{r} grants {p:?}");
                }
            }
        }
        assert!(
            !Role::Viewer
                .permissions()
                .contains(&Permission::CamerasWrite)
        );
        assert!(Role::Admin.permissions().contains(&Permission::UsersManage));
    }
}
