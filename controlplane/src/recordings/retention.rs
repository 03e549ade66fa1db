//! Retention: which tier each recording belongs on by age, and the journaled moves and
//! deletes that put it there.
//!
//! A policy gives ages (since the recording ended) at which a file leaves hot for warm,
//! for cold, for the archive, and is deleted; a camera's own policy, else its company's,
//! replaces the default as a whole ([`super::policy`]). Tiers that are not configured are skipped (the file waits on the tier it is
//! on until a later one applies) and files only move forward.
//!
//! Crash safety (every step is journaled in `recording_jobs` before it is taken):
//! a move is `copying` (copy + verify to the destination) → `copied` (checksum recorded) →
//! `switched` (the row points at the copy, in the same transaction) → source removed → job
//! deleted. A delete removes the row and journals `deleting` in one transaction, then
//! removes the file. [`Retention::recover`], run before every pass and at start-up, undoes
//! moves that had not switched (removes the copy; the row still points at the intact
//! source) and finishes the rest (removes the source, or the deleted file). So a crash at
//! any moment loses nothing and leaves no file that the next run does not finish or remove.

use std::path::Path;
use std::sync::Arc;

use super::policy::Policies;
use super::tiers::{TierError, Tiers};
use crate::clock::now_ms;
use crate::store::recordings::{JobKind, JobState, Recording, RecordingJob, RetentionPolicy, Tier};
use crate::store::{Store, StoreError};

/// The default policy's scope.
pub const DEFAULT_SCOPE: &str = "*";
/// Candidates read per page.
const PAGE: i64 = 200;

/// Test hook: where a move stops the process (`--test-crash-at`), to prove recovery. Without
/// the `test-hooks` feature nothing can ask for it and nothing stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// After the copy is verified and journaled, before the row switches.
    AfterCopy,
    /// After the row switched, before the source is removed.
    AfterSwitch,
}

#[cfg(feature = "test-hooks")]
impl std::str::FromStr for CrashPoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "after-copy" => Ok(CrashPoint::AfterCopy),
            "after-switch" => Ok(CrashPoint::AfterSwitch),
            _ => Err(format!("expected after-copy or after-switch, got {s:?}")),
        }
    }
}

/// Ages in seconds; `None`: never.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ages {
    /// hot → warm.
    pub warm: Option<i64>,
    /// → cold.
    pub cold: Option<i64>,
    /// → archive.
    pub archive: Option<i64>,
    /// Deleted.
    pub delete: Option<i64>,
}

impl Ages {
    /// From a stored policy.
    pub fn of(p: &RetentionPolicy) -> Self {
        Self {
            warm: p.warm_after_s,
            cold: p.cold_after_s,
            archive: p.archive_after_s,
            delete: p.delete_after_s,
        }
    }

    /// Checks the ages are not negative and do not decrease along the tiers.
    ///
    /// # Errors
    /// The first field (API name) that is out of order, with why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let fields = [
            ("warmAfterDays", self.warm),
            ("coldAfterDays", self.cold),
            ("archiveAfterDays", self.archive),
            ("deleteAfterDays", self.delete),
        ];
        let mut prev: Option<(&str, i64)> = None;
        for (name, v) in fields {
            let Some(v) = v else { continue };
            if v < 0 {
                return Err((name, "must not be negative".into()));
            }
            if let Some((p, pv)) = prev
                && v < pv
            {
                return Err((name, format!("must not be less than {p}")));
            }
            prev = Some((name, v));
        }
        Ok(())
    }

    pub(crate) fn smallest(&self) -> Option<i64> {
        [self.warm, self.cold, self.archive, self.delete]
            .into_iter()
            .flatten()
            .min()
    }
}

/// What a recording needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    Stay,
    /// Move to this tier.
    Move(Tier),
    /// Delete.
    Delete,
}

/// Decides for a recording of `age_s` seconds on `current`.
pub fn decide(ages: &Ages, age_s: i64, current: Tier, configured: impl Fn(Tier) -> bool) -> Action {
    if ages.delete.is_some_and(|d| age_s >= d) {
        return Action::Delete;
    }
    let mut target = Tier::Hot;
    for (tier, after) in [
        (Tier::Warm, ages.warm),
        (Tier::Cold, ages.cold),
        (Tier::Archived, ages.archive),
    ] {
        if configured(tier) && after.is_some_and(|a| age_s >= a) {
            target = tier;
        }
    }
    if target > current {
        Action::Move(target)
    } else {
        Action::Stay
    }
}

/// Most skipped or failed recordings a report names one by one (all are counted).
const LISTED: usize = 100;

/// What a pass did.
///
/// Every recording the policy says is due is either moved, deleted, or counted in
/// `skipped`/`failed` with a reason in `skips` (the first 100 are named): nothing due is
/// left behind without a word.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Journal entries finished or undone.
    pub recovered: u64,
    /// Files moved.
    pub moved: u64,
    /// Bytes moved.
    pub bytes_moved: u64,
    /// Files deleted.
    pub deleted: u64,
    /// Moves or deletes that failed (retried next pass).
    pub failed: u64,
    /// Recordings that are due but were left where they are, for a reason that is not a
    /// failure (still being written, tier not configured, busy, changed meanwhile).
    pub skipped: u64,
    /// The skipped and failed recordings, each with why (at most 100 listed).
    pub skips: Vec<Skip>,
}

impl Report {
    fn skip(&mut self, r: &Recording, reason: SkipReason, error: Option<String>) {
        if reason == SkipReason::Failed {
            self.failed += 1;
        } else {
            self.skipped += 1;
        }
        if self.skips.len() < LISTED {
            self.skips.push(Skip {
                recording_id: r.id.clone(),
                camera_id: r.camera_id.clone(),
                tier: r.storage_tier,
                reason,
                error,
            });
        }
    }

    fn is_empty(&self) -> bool {
        self == &Report::default()
    }
}

/// A due recording a pass left where it is, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Skip {
    /// The recording.
    pub recording_id: String,
    /// Its camera.
    pub camera_id: String,
    /// The tier it stays on.
    #[schema(value_type = String, example = "hot")]
    #[serde(serialize_with = "tier_name")]
    pub tier: Tier,
    /// Why it was not moved or deleted.
    pub reason: SkipReason,
    /// The error, for `failed`.
    pub error: Option<String>,
}

fn tier_name<S: serde::Serializer>(t: &Tier, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.as_str())
}

/// Why a due recording was not moved or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum SkipReason {
    /// The file is still being written; it is moved by the first pass after it closes.
    StillRecording,
    /// The policy asks for a tier this node has no storage for (`--storage-warm`,
    /// `--storage-cold`, `--archive-url`); the file waits until a later configured tier is due.
    TierNotConfigured,
    /// Another move or delete of it is in progress.
    Busy,
    /// The row changed or went away while it was copied; the copy was dropped.
    Changed,
    /// The move or delete failed; the next pass retries.
    Failed,
}

/// Why a pass or a delete failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A tier failed.
    #[error(transparent)]
    Tier(#[from] TierError),
    /// The recording has a move or delete in progress.
    #[error("recording {0} is being moved or deleted")]
    Busy(String),
}

/// The relative name of a recording on every tier: `{camera}/{day}/{file}`.
pub fn relative_name(r: &Recording) -> String {
    let p = Path::new(&r.file_path);
    let day = p
        .parent()
        .and_then(|d| d.file_name())
        .and_then(|d| d.to_str())
        .unwrap_or("unknown-day");
    format!("{}/{day}/{}", r.camera_id, r.filename)
}

/// The retention runner (one pass at a time).
pub struct Retention {
    store: Arc<dyn Store>,
    tiers: Arc<Tiers>,
    #[cfg(feature = "test-hooks")]
    crash: Option<CrashPoint>,
    pass: tokio::sync::Mutex<()>,
    /// This node's name and whether it shares the store with other nodes: a pass handles
    /// only the files this node wrote (see `sink::owned_here`).
    node: String,
    clustered: bool,
}

impl std::fmt::Debug for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retention")
            .field("tiers", &self.tiers)
            .finish_non_exhaustive()
    }
}

impl Retention {
    /// A runner over `tiers`.
    pub fn new(store: Arc<dyn Store>, tiers: Arc<Tiers>) -> Self {
        Self {
            store,
            tiers,
            #[cfg(feature = "test-hooks")]
            crash: None,
            pass: tokio::sync::Mutex::new(()),
            node: "local".into(),
            clustered: false,
        }
    }

    /// Acts as the node named `node`; `clustered`: other nodes share the store, and their
    /// recordings and journaled jobs are theirs to handle.
    #[must_use]
    pub fn for_node(mut self, node: &str, clustered: bool) -> Self {
        node.clone_into(&mut self.node);
        self.clustered = clustered;
        self
    }

    /// Whether this node handles `r` (it wrote the file).
    pub fn owns(&self, r: &Recording) -> bool {
        super::sink::owned_here(r, &self.node, self.clustered)
    }

    fn owns_job(&self, j: &RecordingJob) -> bool {
        match &j.node_id {
            Some(n) => *n == self.node,
            None => !self.clustered,
        }
    }

    /// Test hook: abort the process at `point` of the next move.
    #[cfg(feature = "test-hooks")]
    #[must_use]
    pub fn with_crash_at(mut self, point: Option<CrashPoint>) -> Self {
        self.crash = point;
        self
    }

    /// The tiers.
    pub fn tiers(&self) -> &Arc<Tiers> {
        &self.tiers
    }

    #[cfg(feature = "test-hooks")]
    fn crash_if(&self, point: CrashPoint, id: &str) {
        if self.crash == Some(point) {
            tracing::error!(recording_id = %id, ?point, "test hook: crashing in the middle of a move");
            std::process::abort();
        }
    }

    /// Without the `test-hooks` feature there is no hook: nothing to check, nothing in the
    /// binary.
    #[cfg(not(feature = "test-hooks"))]
    fn crash_if(&self, _point: CrashPoint, _id: &str) {}

    /// Finishes or undoes every journaled job (see the module docs).
    ///
    /// # Errors
    /// Store failures; a job whose file operation fails stays journaled for the next pass.
    pub async fn recover(&self) -> Result<u64, RetentionError> {
        let _pass = self.pass.lock().await;
        self.recover_locked().await
    }

    async fn recover_locked(&self) -> Result<u64, RetentionError> {
        let mut done = 0;
        for job in self.store.list_jobs().await? {
            if !self.owns_job(&job) {
                continue;
            }
            let result = match (job.kind, job.state) {
                (JobKind::Move, JobState::Copying | JobState::Copied) => {
                    // The row still points at the intact source: drop the copy.
                    match (
                        job.to_tier.as_deref().map(str::parse::<Tier>),
                        &job.dst_path,
                    ) {
                        (Some(Ok(t)), Some(dst)) => self.tiers.remove(t, dst).await,
                        _ => Ok(()),
                    }
                }
                (JobKind::Move, _) | (JobKind::Delete, _) => {
                    self.tiers.remove(job.from_tier, &job.src_path).await
                }
            };
            match result {
                Ok(()) => {
                    self.store.delete_job(&job.recording_id).await?;
                    tracing::info!(recording_id = %job.recording_id, kind = job.kind.as_str(), state = job.state.as_str(), "recording job recovered");
                    done += 1;
                }
                Err(e) => {
                    tracing::warn!(recording_id = %job.recording_id, error = %e, "recording job not recovered yet")
                }
            }
        }
        Ok(done)
    }

    /// One pass: recovery, then every recording whose policy says it should move or go.
    ///
    /// # Errors
    /// Store failures (file failures are counted in the report and retried next pass).
    ///
    /// # Cancel safety
    /// Dropping the future between steps leaves a journaled job the next pass finishes.
    pub async fn run(&self, now: i64) -> Result<Report, RetentionError> {
        let _pass = self.pass.lock().await;
        let mut report = Report {
            recovered: self.recover_locked().await?,
            ..Report::default()
        };
        let mut policies = Policies::new(&self.store.list_policies().await?);
        let Some(smallest) = policies.smallest() else {
            return Ok(report);
        };
        let configured = |t: Tier| self.tiers.configured(t);
        // A file being written is not touched; say so when the policy would act on it.
        for r in self.store.open_recordings().await? {
            if !self.owns(&r) {
                continue;
            }
            let ages = policies.ages(&*self.store, &r.camera_id).await?;
            let wanted = decide(&ages, age_s(now, &r), r.storage_tier, |_| true);
            if wanted != Action::Stay {
                report.skip(&r, SkipReason::StillRecording, None);
            }
        }
        // `end_time` is the camera's media clock carried onto the wall clock at the start of
        // its session, so a file closed a moment ago can end a few tens of milliseconds
        // "in the future" on ours (the encoder sent its first frames late, then caught up).
        // Such a file has ended: its age is 0, never negative, and a policy of 0 days takes
        // every complete file whatever its end time says.
        let ended_before = if smallest == 0 {
            i64::MAX
        } else {
            now.saturating_sub(smallest.saturating_mul(1000))
                .saturating_add(1)
        };
        let mut after = None;
        loop {
            let page = self
                .store
                .retention_candidates(ended_before, after.clone(), PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some((last.end_time, last.id.clone()));
            for r in page.iter().filter(|r| self.owns(r)) {
                let ages = policies.ages(&*self.store, &r.camera_id).await?;
                let age = age_s(now, r);
                let action = decide(&ages, age, r.storage_tier, configured);
                let outcome = match action {
                    Action::Stay => {
                        if decide(&ages, age, r.storage_tier, |_| true) != Action::Stay {
                            report.skip(r, SkipReason::TierNotConfigured, None);
                        }
                        continue;
                    }
                    Action::Move(to) => self.move_one(r, to).await.map(|moved| {
                        if moved {
                            report.moved += 1;
                            report.bytes_moved += u64::try_from(r.file_size).unwrap_or(0);
                        } else {
                            report.skip(r, SkipReason::Changed, None);
                        }
                    }),
                    Action::Delete => self.delete_unlocked(&r.id).await.map(|row| {
                        if row.is_some() {
                            report.deleted += 1;
                        } else {
                            report.skip(r, SkipReason::Changed, None);
                        }
                    }),
                };
                match outcome {
                    Ok(()) => {}
                    Err(RetentionError::Busy(_)) => report.skip(r, SkipReason::Busy, None),
                    Err(e) => {
                        tracing::warn!(recording_id = %r.id, error = %e, ?action, "retention step failed");
                        report.skip(r, SkipReason::Failed, Some(e.to_string()));
                    }
                }
            }
        }
        if !report.is_empty() {
            tracing::info!(
                recovered = report.recovered,
                moved = report.moved,
                bytes_moved = report.bytes_moved,
                deleted = report.deleted,
                failed = report.failed,
                skipped = report.skipped,
                "retention pass"
            );
        }
        Ok(report)
    }

    /// Moves one recording (copy, verify, switch, remove the source); `false` when the row
    /// changed meanwhile and the copy was dropped.
    async fn move_one(&self, r: &Recording, to: Tier) -> Result<bool, RetentionError> {
        let dst = self.tiers.destination(to, &relative_name(r))?;
        let now = now_ms();
        let job = RecordingJob {
            recording_id: r.id.clone(),
            kind: JobKind::Move,
            state: JobState::Copying,
            from_tier: r.storage_tier,
            to_tier: Some(to.as_str().to_owned()),
            src_path: r.file_path.clone(),
            dst_path: Some(dst.clone()),
            checksum: None,
            created_at: now,
            updated_at: now,
            node_id: r.node_id.clone(),
        };
        self.store
            .create_job(&job)
            .await
            .map_err(|e| busy_or(e, &r.id))?;
        let copied = self.tiers.copy(Path::new(&r.file_path), to, &dst).await;
        let sum = match copied {
            Ok(sum) if r.checksum.as_deref().is_none_or(|c| c == sum) => sum,
            Ok(sum) => {
                let _ = self.tiers.remove(to, &dst).await;
                self.store.delete_job(&r.id).await?;
                tracing::error!(recording_id = %r.id, expected = ?r.checksum, got = %sum, "recording file changed on its tier; not moved");
                return Err(TierError::Verify {
                    path: r.file_path.clone(),
                    what: "checksum differs from the one recorded at the previous move".into(),
                }
                .into());
            }
            Err(e) => {
                self.store.delete_job(&r.id).await?;
                return Err(e.into());
            }
        };
        self.store
            .set_job_state(&r.id, JobState::Copied, Some(&sum))
            .await?;
        self.crash_if(CrashPoint::AfterCopy, &r.id);
        let cloud_url = (to == Tier::Archived)
            .then(|| self.tiers.archive().map(|a| a.url(&dst)))
            .flatten();
        let switched = self
            .store
            .switch_tier(&r.id, to, &dst, cloud_url.as_deref(), &sum)
            .await?;
        if !switched {
            self.tiers.remove(to, &dst).await?;
            self.store.delete_job(&r.id).await?;
            return Ok(false);
        }
        self.crash_if(CrashPoint::AfterSwitch, &r.id);
        self.tiers.remove(r.storage_tier, &r.file_path).await?;
        self.store.delete_job(&r.id).await?;
        tracing::info!(recording_id = %r.id, from = r.storage_tier.as_str(), to = to.as_str(), bytes = r.file_size, "recording moved");
        Ok(true)
    }

    /// Deletes a recording: the row (journaled), then the file on whatever tier holds it.
    /// The row as it was; `None` when there is none.
    ///
    /// # Errors
    /// [`RetentionError::Busy`] while a move of it is in progress; store failures. A file
    /// that cannot be removed now stays journaled and is removed by the next pass.
    pub async fn delete(&self, id: &str) -> Result<Option<Recording>, RetentionError> {
        self.delete_unlocked(id).await
    }

    async fn delete_unlocked(&self, id: &str) -> Result<Option<Recording>, RetentionError> {
        let Some(row) = self
            .store
            .delete_recording_journaled(id)
            .await
            .map_err(|e| busy_or(e, id))?
        else {
            return Ok(None);
        };
        if row.storage_tier != Tier::Archived && !self.owns(&row) {
            // Another node's disk: the journaled delete is its to finish (its next pass,
            // or its start-up, removes the file before reconciling its hot tier).
            tracing::info!(recording_id = %id, node = ?row.node_id, "recording deleted; its node removes the file");
            return Ok(Some(row));
        }
        match self.tiers.remove(row.storage_tier, &row.file_path).await {
            Ok(()) => self.store.delete_job(id).await?,
            Err(e) => {
                tracing::warn!(recording_id = %id, error = %e, "recording file not removed yet; the next retention pass retries")
            }
        }
        tracing::info!(recording_id = %id, tier = row.storage_tier.as_str(), "recording deleted");
        Ok(Some(row))
    }
}

/// Seconds since `r` ended, never negative (see [`Retention::run`] on media clocks ahead of
/// ours).
fn age_s(now: i64, r: &Recording) -> i64 {
    now.saturating_sub(r.end_time).max(0) / 1000
}

fn busy_or(e: StoreError, id: &str) -> RetentionError {
    if e.conflict_field().is_some() {
        RetentionError::Busy(id.to_owned())
    } else {
        e.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn decisions() {
        let ages = Ages {
            warm: Some(7 * DAY),
            cold: Some(30 * DAY),
            archive: Some(90 * DAY),
            delete: Some(365 * DAY),
        };
        let all = |_: Tier| true;
        assert_eq!(decide(&ages, DAY, Tier::Hot, all), Action::Stay);
        assert_eq!(
            decide(&ages, 8 * DAY, Tier::Hot, all),
            Action::Move(Tier::Warm)
        );
        assert_eq!(decide(&ages, 8 * DAY, Tier::Warm, all), Action::Stay);
        // Long overdue: straight to the furthest tier due.
        assert_eq!(
            decide(&ages, 100 * DAY, Tier::Hot, all),
            Action::Move(Tier::Archived)
        );
        assert_eq!(decide(&ages, 400 * DAY, Tier::Cold, all), Action::Delete);
        // A missing warm tier is skipped; files never move back.
        let no_warm = |t: Tier| t != Tier::Warm;
        assert_eq!(decide(&ages, 8 * DAY, Tier::Hot, no_warm), Action::Stay);
        assert_eq!(
            decide(&ages, 31 * DAY, Tier::Hot, no_warm),
            Action::Move(Tier::Cold)
        );
        assert_eq!(decide(&ages, 31 * DAY, Tier::Archived, all), Action::Stay);
        assert_eq!(
            decide(&Ages::default(), 10_000 * DAY, Tier::Hot, all),
            Action::Stay
        );
    }

    #[test]
    fn validation() {
        assert!(Ages::default().validate().is_ok());
        let ok = Ages {
            warm: Some(1),
            cold: None,
            archive: Some(1),
            delete: Some(5),
        };
        assert!(ok.validate().is_ok());
        let bad = Ages {
            warm: Some(10),
            cold: Some(5),
            ..Ages::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "coldAfterDays");
        let neg = Ages {
            delete: Some(-1),
            ..Ages::default()
        };
        assert_eq!(neg.validate().unwrap_err().0, "deleteAfterDays");
        assert_eq!(ok.smallest(), Some(1));
    }

    #[test]
    fn relative_names() {
        let r = Recording {
            id: "r".into(),
            camera_id: "cam".into(),
            segment_number: 1,
            filename: "cam-20261130T140000.000Z.mp4".into(),
            file_path: "/data/recordings/cam/2026-11-30/cam-20261130T140000.000Z.mp4".into(),
            duration_ms: 0,
            file_size: 0,
            init_size: 0,
            start_time: 0,
            end_time: 0,
            status: crate::store::recordings::RecordingStatus::Complete,
            storage_tier: Tier::Hot,
            is_archived: false,
            cloud_url: None,
            signed_url_expires_at: None,
            checksum: None,
            created_at: 0,
            updated_at: 0,
            node_id: None,
        };
        assert_eq!(
            relative_name(&r),
            "cam/2026-11-30/cam-20261130T140000.000Z.mp4"
        );
        // Ownership: a node handles the files it wrote; a row from before the column is a
        // single node's, and nobody's to touch in a cluster.
        use crate::recordings::sink::owned_here;
        assert!(owned_here(&r, "local", false));
        assert!(!owned_here(&r, "1", true));
        let mine = Recording {
            node_id: Some("1".into()),
            ..r.clone()
        };
        assert!(owned_here(&mine, "1", true));
        assert!(!owned_here(&mine, "2", true));
        assert!(!owned_here(&mine, "local", false));
    }
}
