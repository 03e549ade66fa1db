//! The recordings part of the repository: recording rows and their fragment index, the
//! journal of tier moves and deletes, retention policies, bookmarks and the audit log
//! ([`RecordingStore`], a supertrait of [`Store`](super::Store)). Both SQL stores implement
//! it with the same statements (`sql/recordings.rs`).
//!
//! The fragment index is stored as opaque chunks (`recordings::index` encodes them); the
//! store only keeps them in order. What a row means on disk (paths, tiers) is the
//! recordings service's business.

use async_trait::async_trait;
use serde::Serialize;

use super::{Alert, StoreError};
use crate::rbac::UnknownName;

/// Where a recording file lives. Ordered: files only ever move to a later tier.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// The recorder's directory (`--recordings-dir`).
    Hot,
    /// `--storage-warm`.
    Warm,
    /// `--storage-cold`.
    Cold,
    /// The object store of `--archive-url`.
    Archived,
}

impl Tier {
    /// Every tier, in order.
    pub const ALL: [Tier; 4] = [Tier::Hot, Tier::Warm, Tier::Cold, Tier::Archived];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Hot => "hot",
            Tier::Warm => "warm",
            Tier::Cold => "cold",
            Tier::Archived => "archived",
        }
    }
}

impl std::str::FromStr for Tier {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownName(s.to_owned()))
    }
}

impl TryFrom<String> for Tier {
    type Error = UnknownName;
    fn try_from(s: String) -> Result<Self, UnknownName> {
        s.parse()
    }
}

/// Whether the recorder still writes a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordingStatus {
    /// Open: the recorder appends to it.
    Recording,
    /// Closed (cleanly or by repair): the file no longer changes.
    Complete,
}

impl RecordingStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingStatus::Recording => "recording",
            RecordingStatus::Complete => "complete",
        }
    }
}

impl TryFrom<String> for RecordingStatus {
    type Error = UnknownName;
    fn try_from(s: String) -> Result<Self, UnknownName> {
        match s.as_str() {
            "recording" => Ok(RecordingStatus::Recording),
            "complete" => Ok(RecordingStatus::Complete),
            _ => Err(UnknownName(s)),
        }
    }
}

/// One recording file.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Recording {
    /// UUID.
    pub id: String,
    /// The camera.
    pub camera_id: String,
    /// 1-based, per camera, in the order files were opened.
    pub segment_number: i64,
    /// File name (`{camera}-{YYYYMMDDTHHMMSS.mmmZ}.mp4`).
    pub filename: String,
    /// Where the file is now: an absolute path on a local tier, the object key when archived.
    pub file_path: String,
    /// Media duration, ms.
    pub duration_ms: i64,
    /// Bytes.
    pub file_size: i64,
    /// Bytes of the init segment at the start of the file.
    pub init_size: i64,
    /// Unix ms of the first sample.
    pub start_time: i64,
    /// Unix ms of the end of the last fragment.
    pub end_time: i64,
    /// Open or closed.
    #[sqlx(try_from = "String")]
    pub status: RecordingStatus,
    /// The tier holding the file.
    #[sqlx(try_from = "String")]
    pub storage_tier: Tier,
    /// In the archive bucket.
    pub is_archived: bool,
    /// `s3://bucket/key` when archived.
    pub cloud_url: Option<String>,
    /// Unix ms when the last signed download URL expires.
    pub signed_url_expires_at: Option<i64>,
    /// SHA-256 of the file, hex (known once the file was moved: it is verified on each move).
    pub checksum: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
    /// The node that wrote the file (the control plane's node name: `local` on a single
    /// node, the raft id in a cluster); `None` for rows older than the column.
    pub node_id: Option<String>,
}

/// The fields a recording row is created (or authoritatively rewritten) with.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecording {
    /// The camera.
    pub camera_id: String,
    /// File name.
    pub filename: String,
    /// Absolute path on the hot tier.
    pub file_path: String,
    /// Init segment bytes.
    pub init_size: i64,
    /// Unix ms of the first sample.
    pub start_time: i64,
    /// Unix ms of the end of the last fragment.
    pub end_time: i64,
    /// Media duration, ms.
    pub duration_ms: i64,
    /// Bytes.
    pub file_size: i64,
    /// Open or closed.
    pub status: RecordingStatus,
    /// The node writing the file (see [`Recording::node_id`]).
    pub node_id: Option<String>,
}

/// A growing file's new figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingGrowth {
    /// Media duration, ms.
    pub duration_ms: i64,
    /// Bytes.
    pub file_size: i64,
    /// Unix ms of the end of the last fragment.
    pub end_time: i64,
    /// The file was closed.
    pub complete: bool,
}

/// Which recordings to list.
#[derive(Debug, Clone, Default)]
pub struct RecordingFilter {
    /// One camera.
    pub camera_id: Option<String>,
    /// The caller's tenant: only recordings of that company's cameras.
    pub tenant: Option<String>,
    /// Only files ending after this (Unix ms).
    pub from: Option<i64>,
    /// Only files starting before this (Unix ms).
    pub to: Option<i64>,
    /// One tier.
    pub tier: Option<Tier>,
    /// Rows to skip.
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
}

/// What a journal entry is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// A tier move.
    Move,
    /// A delete (row first, then the file).
    Delete,
}

/// How far a journal entry got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Copying to the destination; the row still points at the source.
    Copying,
    /// Copied and verified; the row still points at the source.
    Copied,
    /// The row points at the destination; the source may still exist.
    Switched,
    /// The row is gone; the file may still exist.
    Deleting,
}

impl JobKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Move => "move",
            JobKind::Delete => "delete",
        }
    }
}

impl TryFrom<String> for JobKind {
    type Error = UnknownName;
    fn try_from(s: String) -> Result<Self, UnknownName> {
        match s.as_str() {
            "move" => Ok(JobKind::Move),
            "delete" => Ok(JobKind::Delete),
            _ => Err(UnknownName(s)),
        }
    }
}

impl JobState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Copying => "copying",
            JobState::Copied => "copied",
            JobState::Switched => "switched",
            JobState::Deleting => "deleting",
        }
    }
}

impl TryFrom<String> for JobState {
    type Error = UnknownName;
    fn try_from(s: String) -> Result<Self, UnknownName> {
        [
            JobState::Copying,
            JobState::Copied,
            JobState::Switched,
            JobState::Deleting,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
        .ok_or(UnknownName(s))
    }
}

/// A journal entry: one move or delete of one recording in progress.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RecordingJob {
    /// The recording (one job at a time per recording).
    pub recording_id: String,
    /// Move or delete.
    #[sqlx(try_from = "String")]
    pub kind: JobKind,
    /// How far it got.
    #[sqlx(try_from = "String")]
    pub state: JobState,
    /// The tier of the source.
    #[sqlx(try_from = "String")]
    pub from_tier: Tier,
    /// The destination tier (moves).
    pub to_tier: Option<String>,
    /// Path or key of the source.
    pub src_path: String,
    /// Path or key of the destination (moves).
    pub dst_path: Option<String>,
    /// SHA-256 of the copy, once verified.
    pub checksum: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
    /// The node whose files the job touches (the recording's `node_id`).
    pub node_id: Option<String>,
}

/// A retention policy: ages (seconds after a recording ended) at which it leaves a tier.
/// `None`: never.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RetentionPolicy {
    /// `*` for the default, else a camera id.
    pub scope: String,
    /// hot → warm.
    pub warm_after_s: Option<i64>,
    /// → cold.
    pub cold_after_s: Option<i64>,
    /// → archive.
    pub archive_after_s: Option<i64>,
    /// Deleted.
    pub delete_after_s: Option<i64>,
    /// Unix ms.
    pub updated_at: i64,
}

/// A named moment on a camera's timeline.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Bookmark {
    /// UUID.
    pub id: String,
    /// The camera.
    pub camera_id: String,
    /// Unix ms.
    pub at: i64,
    /// Text.
    pub label: String,
    /// Who made it.
    pub user_id: Option<String>,
    /// Unix ms.
    pub created_at: i64,
}

/// A new bookmark.
#[derive(Debug, Clone)]
pub struct NewBookmark {
    /// The camera.
    pub camera_id: String,
    /// Unix ms.
    pub at: i64,
    /// Text.
    pub label: String,
    /// Who.
    pub user_id: Option<String>,
}

/// One audited access to recordings.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditEntry {
    /// UUID.
    pub id: String,
    /// `recording.url_issued`, `recording.playlist`, `recording.deleted`, ...
    pub action: String,
    /// The user (a token's owner for API tokens).
    pub user_id: Option<String>,
    /// The API token, when one was used.
    pub token_id: Option<String>,
    /// The camera.
    pub camera_id: Option<String>,
    /// The recording.
    pub recording_id: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Free text (time range, tier).
    pub detail: Option<String>,
    /// Unix ms.
    pub created_at: i64,
}

/// A new audit entry.
#[derive(Debug, Clone, Default)]
pub struct NewAudit {
    /// Action.
    pub action: String,
    /// User.
    pub user_id: Option<String>,
    /// Token.
    pub token_id: Option<String>,
    /// Camera.
    pub camera_id: Option<String>,
    /// Recording.
    pub recording_id: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Details.
    pub detail: Option<String>,
}

/// Which audit entries to list (newest first).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// One action.
    pub action: Option<String>,
    /// One user.
    pub user_id: Option<String>,
    /// One camera.
    pub camera_id: Option<String>,
    /// From (Unix ms, inclusive).
    pub from: Option<i64>,
    /// To (Unix ms, exclusive).
    pub to: Option<i64>,
    /// Rows to skip.
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
}

/// Bytes and files of one camera on one tier.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TierUsage {
    /// The camera.
    pub camera_id: String,
    /// The tier.
    #[sqlx(try_from = "String")]
    pub tier: Tier,
    /// Bytes.
    pub bytes: i64,
    /// Files.
    pub files: i64,
}

/// Recording rows, their index, the move journal, policies, bookmarks and the audit log.
///
/// # Cancel safety
/// As [`Store`](super::Store): a dropped future leaves its statement or transaction applied
/// or not, never half.
#[async_trait]
pub trait RecordingStore: Send + Sync + 'static {
    /// Creates the row of a new file, numbered after the camera's last one; a row with the
    /// same path is updated instead (an event seen twice).
    async fn open_recording(&self, r: NewRecording) -> Result<Recording, StoreError>;
    /// Updates a growing file's figures and appends a chunk of index entries, in one
    /// transaction; the row's id, or `None` when no row has this path.
    async fn grow_recording(
        &self,
        file_path: &str,
        growth: RecordingGrowth,
        entries: Option<Vec<u8>>,
    ) -> Result<Option<String>, StoreError>;
    /// Writes a row and its whole index from the file itself (repair, re-indexing): creates
    /// or replaces the row with this path and replaces its index with `entries`.
    async fn index_recording(
        &self,
        r: NewRecording,
        entries: Vec<u8>,
    ) -> Result<Recording, StoreError>;
    /// One recording.
    async fn get_recording(&self, id: &str) -> Result<Option<Recording>, StoreError>;
    /// The recording at a path or object key.
    async fn get_recording_by_path(&self, path: &str) -> Result<Option<Recording>, StoreError>;
    /// A filtered page, newest first, and the filtered total.
    async fn list_recordings(
        &self,
        filter: &RecordingFilter,
    ) -> Result<(Vec<Recording>, i64), StoreError>;
    /// A camera's recordings overlapping `[from, to)`, oldest first, at most `limit`.
    async fn recordings_between(
        &self,
        camera_id: &str,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<Recording>, StoreError>;
    /// The index chunks of a recording, in order.
    async fn recording_index(&self, id: &str) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Rows of files still being written.
    async fn open_recordings(&self) -> Result<Vec<Recording>, StoreError>;
    /// Complete recordings that ended before `ended_before`, ordered by (end_time, id),
    /// after the key `after`; at most `limit` (keyset pages for the retention run).
    async fn retention_candidates(
        &self,
        ended_before: i64,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<Recording>, StoreError>;
    /// Deletes the row with this path (and its index); whether it existed.
    async fn delete_recording_by_path(&self, path: &str) -> Result<bool, StoreError>;
    /// Records when the last signed download URL expires.
    async fn set_signed_url_expiry(&self, id: &str, expires_at: i64) -> Result<(), StoreError>;
    /// Bytes and files per camera and tier; with `tenant`, only that company's cameras.
    async fn recording_usage(&self, tenant: Option<&str>) -> Result<Vec<TierUsage>, StoreError>;

    /// Journals a new job; [`StoreError::Conflict`] when the recording already has one.
    async fn create_job(&self, job: &RecordingJob) -> Result<(), StoreError>;
    /// Advances a job (and records the verified checksum).
    async fn set_job_state(
        &self,
        recording_id: &str,
        state: JobState,
        checksum: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Points the row at its new copy and marks the job switched, in one transaction;
    /// whether the row still existed.
    async fn switch_tier(
        &self,
        recording_id: &str,
        tier: Tier,
        file_path: &str,
        cloud_url: Option<&str>,
        checksum: &str,
    ) -> Result<bool, StoreError>;
    /// Journals a delete and deletes the row (and its index), in one transaction; the row as
    /// it was, `None` when there was none.
    async fn delete_recording_journaled(&self, id: &str) -> Result<Option<Recording>, StoreError>;
    /// Forgets a finished job.
    async fn delete_job(&self, recording_id: &str) -> Result<(), StoreError>;
    /// One recording's job.
    async fn get_job(&self, recording_id: &str) -> Result<Option<RecordingJob>, StoreError>;
    /// Every unfinished job.
    async fn list_jobs(&self) -> Result<Vec<RecordingJob>, StoreError>;

    /// Every policy (the default is scope `*`).
    async fn list_policies(&self) -> Result<Vec<RetentionPolicy>, StoreError>;
    /// Creates or replaces a policy.
    async fn put_policy(&self, policy: &RetentionPolicy) -> Result<(), StoreError>;
    /// Deletes a policy; whether it existed.
    async fn delete_policy(&self, scope: &str) -> Result<bool, StoreError>;

    /// Creates a bookmark.
    async fn create_bookmark(&self, b: NewBookmark) -> Result<Bookmark, StoreError>;
    /// A camera's bookmarks in `[from, to)`, oldest first.
    async fn list_bookmarks(
        &self,
        camera_id: &str,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<Bookmark>, StoreError>;
    /// A camera's alerts in `[from, to)`, oldest first.
    async fn camera_alerts(
        &self,
        camera_id: &str,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<Alert>, StoreError>;

    /// Records an access.
    async fn add_audit(&self, e: NewAudit) -> Result<(), StoreError>;
    /// A filtered page of the audit log, newest first, and the filtered total.
    async fn list_audit(&self, f: &AuditFilter) -> Result<(Vec<AuditEntry>, i64), StoreError>;
}
