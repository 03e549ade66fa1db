//! Which retention policy applies to a camera: its own (scope = the camera id), else its
//! company's (scope `company:{name}`), else the default (scope `*`). Each replaces the
//! next as a whole. Camera ids cannot contain `:` or be `*`, so the scopes never collide.
//!
//! Used by the retention pass ([`super::retention::Retention::run`]) and shown by
//! `GET /api/v1/retention`.

use std::collections::HashMap;

use super::retention::{Ages, DEFAULT_SCOPE};
use crate::store::recordings::RetentionPolicy;
use crate::store::{Store, StoreError};

const COMPANY_PREFIX: &str = "company:";

/// The scope of a company's policy.
pub fn company_scope(company: &str) -> String {
    format!("{COMPANY_PREFIX}{company}")
}

/// The company of a company policy's scope.
pub fn scope_company(scope: &str) -> Option<&str> {
    scope.strip_prefix(COMPANY_PREFIX)
}

/// The stored policies, resolved per camera. Built once per retention pass.
#[derive(Debug, Default)]
pub struct Policies {
    default: Ages,
    companies: HashMap<String, Ages>,
    cameras: HashMap<String, Ages>,
    /// Each camera's company, read from the store once per pass (only when some company
    /// has a policy).
    company_of: HashMap<String, Option<String>>,
}

impl Policies {
    /// Sorts the stored policies by scope.
    pub fn new(stored: &[RetentionPolicy]) -> Self {
        let mut p = Self::default();
        for s in stored {
            let ages = Ages::of(s);
            if s.scope == DEFAULT_SCOPE {
                p.default = ages;
            } else if let Some(c) = scope_company(&s.scope) {
                p.companies.insert(c.to_owned(), ages);
            } else {
                p.cameras.insert(s.scope.clone(), ages);
            }
        }
        p
    }

    /// The smallest age any policy acts at (recordings younger than it need nothing).
    pub fn smallest(&self) -> Option<i64> {
        std::iter::once(&self.default)
            .chain(self.companies.values())
            .chain(self.cameras.values())
            .filter_map(Ages::smallest)
            .min()
    }

    /// The ages in force for `camera_id`: camera > company > default.
    ///
    /// # Errors
    /// The store, when the camera's company has to be read.
    pub async fn ages(&mut self, store: &dyn Store, camera_id: &str) -> Result<Ages, StoreError> {
        if let Some(a) = self.cameras.get(camera_id) {
            return Ok(*a);
        }
        if self.companies.is_empty() {
            return Ok(self.default);
        }
        let company = match self.company_of.get(camera_id) {
            Some(c) => c.clone(),
            None => {
                let c = store.get_camera(camera_id).await?.and_then(|c| c.company);
                self.company_of.insert(camera_id.to_owned(), c.clone());
                c
            }
        };
        Ok(company
            .and_then(|c| self.companies.get(&c).copied())
            .unwrap_or(self.default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(scope: &str, delete: i64) -> RetentionPolicy {
        RetentionPolicy {
            scope: scope.into(),
            warm_after_s: None,
            cold_after_s: None,
            archive_after_s: None,
            delete_after_s: Some(delete),
            updated_at: 0,
        }
    }

    #[test]
    fn scopes_sort_and_smallest_spans_all() {
        let p = Policies::new(&[
            policy("*", 100),
            policy(&company_scope("acme"), 50),
            policy("cam-1", 70),
        ]);
        assert_eq!(p.default.delete, Some(100));
        assert_eq!(p.companies["acme"].delete, Some(50));
        assert_eq!(p.cameras["cam-1"].delete, Some(70));
        assert_eq!(p.smallest(), Some(50));
        assert_eq!(scope_company("company:a:b"), Some("a:b"));
        assert_eq!(scope_company("cam-1"), None);
        assert_eq!(Policies::new(&[]).smallest(), None);
    }
}
