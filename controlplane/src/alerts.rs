//! Alerts raised by watching state rather than by an event: `CAMERA_OFFLINE` for an active
//! camera that was streaming and has been offline for `--alert-offline-after`, resolved
//! when it streams again (or is disabled or deleted). Run by the control plane's sweeper;
//! every node of a cluster may run it (the store keeps one open alert per cause).

use std::collections::HashSet;
use std::time::Duration;

use crate::clock::rfc3339;
use crate::store::{NewAlert, Store, StoreError, StreamStatus};

/// Kind of the alert.
pub(crate) const CAMERA_OFFLINE: &str = "CAMERA_OFFLINE";
/// Most cameras raised per pass (the rest next pass).
const BATCH: i64 = 1000;

fn cause(camera: &str) -> String {
    format!("{CAMERA_OFFLINE}:{camera}")
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OfflinePass {
    pub(crate) raised: usize,
    pub(crate) resolved: usize,
    /// `CAMERA_OFFLINE` alerts open after the pass (`camstream_alerts_open`).
    pub(crate) open: usize,
}

/// One pass at `now_ms`: raises for cameras offline longer than `after` without an open
/// alert, resolves open alerts of cameras that stream again, are disabled or are gone.
pub(crate) async fn offline_pass(
    store: &dyn Store,
    after: Duration,
    now_ms: i64,
) -> Result<OfflinePass, StoreError> {
    let mut pass = OfflinePass::default();
    let open = store.open_alerts(CAMERA_OFFLINE).await?;
    for a in &open {
        let Some(id) = &a.camera_id else { continue };
        let still = store
            .get_camera(id)
            .await?
            .is_some_and(|c| c.is_active && c.stream_status == StreamStatus::Offline);
        if !still && store.resolve_cause(&cause(id), now_ms).await? {
            pass.resolved += 1;
            tracing::info!(camera_id = %id, "alert resolved: camera back (or disabled, or deleted)");
        }
    }
    let open: HashSet<String> = open.into_iter().filter_map(|a| a.camera_id).collect();
    let before = now_ms.saturating_sub(i64::try_from(after.as_millis()).unwrap_or(i64::MAX));
    for c in store.cameras_offline_since(before, BATCH).await? {
        if open.contains(&c.id) {
            continue;
        }
        store
            .create_alert(NewAlert {
                kind: CAMERA_OFFLINE.into(),
                severity: "critical".into(),
                camera_id: Some(c.id.clone()),
                message: format!(
                    "camera {} has been offline for more than {} s",
                    c.name,
                    after.as_secs()
                ),
                cause: Some(cause(&c.id)),
                company: c.company.clone(),
                ..NewAlert::default()
            })
            .await?;
        pass.raised += 1;
        tracing::warn!(camera_id = %c.id, offline_before = %rfc3339(before), "alert: camera offline");
    }
    pass.open = (open.len() + pass.raised).saturating_sub(pass.resolved);
    Ok(pass)
}
