//! The storage tiers of recording files: the hot directory the recorder writes, optional
//! warm and cold directories (`--storage-warm`, `--storage-cold`) and an optional
//! S3-compatible archive (`--archive-url s3://bucket/prefix`, endpoint and credentials from
//! the `AWS_*` environment), and the one operation that crosses them: copy a file and
//! verify the copy (size + SHA-256, read back from the destination).
//!
//! A file keeps its relative name on every tier: `{camera}/{YYYY-MM-DD}/{file}.mp4` under a
//! directory, `{prefix}/{camera}/{YYYY-MM-DD}/{file}.mp4` in the bucket. Local copies go to
//! `{name}.partial`, are synced and renamed, so a complete name is always a complete file.
//! Journaling (what to finish or undo after a crash) is the retention module's job.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

use crate::store::recordings::Tier;

/// Read and upload unit.
const CHUNK: usize = 8 << 20;
/// Multipart uploads in flight per file.
const UPLOAD_CONCURRENCY: usize = 4;

/// A tier operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum TierError {
    /// The tier is not configured.
    #[error("storage tier {0:?} is not configured")]
    NotConfigured(Tier),
    /// Local file I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The object store refused or failed.
    #[error("archive: {0}")]
    Object(#[from] object_store::Error),
    /// The copy does not match the source.
    #[error("copy of {path} does not verify: {what}")]
    Verify {
        /// The destination.
        path: String,
        /// What differed.
        what: String,
    },
    /// A blocking task panicked.
    #[error("copy task failed: {0}")]
    Task(String),
    /// The archive URL or environment is unusable.
    #[error("archive configuration: {0}")]
    Config(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TierError + '_ {
    move |source| TierError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The archive bucket.
#[derive(Debug)]
pub struct Archive {
    store: Arc<AmazonS3>,
    bucket: String,
    prefix: String,
}

impl Archive {
    /// Connects to `s3://bucket/prefix` with the `AWS_*` environment (`AWS_ENDPOINT_URL`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, ...). Plain-HTTP
    /// endpoints (a local MinIO or moto) are allowed when the endpoint says `http://`.
    ///
    /// # Errors
    /// [`TierError::Config`] for a URL that is not `s3://bucket[/prefix]` or a builder
    /// failure.
    pub fn from_url(url: &str) -> Result<Self, TierError> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            TierError::Config(format!("expected s3://bucket/prefix, got {url:?}"))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(TierError::Config(format!("no bucket in {url:?}")));
        }
        // object_store talks HTTPS through reqwest built without a crypto provider; the
        // client is built here, so the provider must be in place first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
            .iter()
            .find_map(|k| std::env::var(k).ok());
        if endpoint.is_some_and(|e| e.starts_with("http://")) {
            builder = builder.with_allow_http(true);
        }
        if std::env::var_os("AWS_DEFAULT_REGION").is_none()
            && std::env::var_os("AWS_REGION").is_none()
        {
            builder = builder.with_region("us-east-1");
        }
        let store = builder
            .build()
            .map_err(|e| TierError::Config(e.to_string()))?;
        Ok(Self {
            store: Arc::new(store),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    /// The key of a relative name.
    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_owned()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    /// `s3://bucket/key`.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// A presigned GET URL of `key`, valid for `ttl`.
    ///
    /// # Errors
    /// Signing failures (credentials).
    pub async fn presign(&self, key: &str, ttl: Duration) -> Result<String, TierError> {
        let url = self
            .store
            .signed_url(
                object_store::signer::Method::GET,
                &ObjectPath::from(key),
                ttl,
            )
            .await?;
        Ok(url.to_string())
    }

    async fn upload(&self, src: &Path, key: &str, len: u64) -> Result<String, TierError> {
        let path = ObjectPath::from(key);
        let mut file = tokio::fs::File::open(src).await.map_err(io(src))?;
        let mut hash = Sha256::new();
        if len <= CHUNK as u64 {
            let mut buf = Vec::with_capacity(len as usize);
            tokio::io::AsyncReadExt::read_to_end(&mut file, &mut buf)
                .await
                .map_err(io(src))?;
            hash.update(&buf);
            self.store.put(&path, PutPayload::from(buf)).await?;
        } else {
            let upload = self.store.put_multipart(&path).await?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, CHUNK);
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = tokio::io::AsyncReadExt::read(&mut file, &mut buf)
                    .await
                    .map_err(io(src))?;
                if n == 0 {
                    break;
                }
                hash.update(&buf[..n]);
                if let Err(e) = w.wait_for_capacity(UPLOAD_CONCURRENCY).await {
                    return Err(e.into());
                }
                w.write(&buf[..n]);
            }
            w.finish().await?;
        }
        Ok(hex(&hash.finalize()))
    }

    /// Size and SHA-256 of an object, read back whole.
    async fn digest(&self, key: &str) -> Result<(u64, String), TierError> {
        use futures_util::StreamExt;
        let got = self.store.get(&ObjectPath::from(key)).await?;
        let mut stream = got.into_stream();
        let mut hash = Sha256::new();
        let mut len = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            len += chunk.len() as u64;
            hash.update(&chunk);
        }
        Ok((len, hex(&hash.finalize())))
    }

    async fn remove(&self, key: &str) -> Result<(), TierError> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Bytes of the object at `key` `start..end`.
    ///
    /// # Errors
    /// Object store failures.
    pub async fn read_range(
        &self,
        key: &str,
        start: u64,
        end: u64,
    ) -> Result<bytes::Bytes, TierError> {
        Ok(self
            .store
            .get_range(&ObjectPath::from(key), start..end)
            .await?)
    }
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The configured tiers.
#[derive(Debug)]
pub struct Tiers {
    hot: PathBuf,
    warm: Option<PathBuf>,
    cold: Option<PathBuf>,
    archive: Option<Archive>,
}

impl Tiers {
    /// Tiers over these directories and archive.
    pub fn new(
        hot: PathBuf,
        warm: Option<PathBuf>,
        cold: Option<PathBuf>,
        archive: Option<Archive>,
    ) -> Self {
        Self {
            hot,
            warm,
            cold,
            archive,
        }
    }

    /// The hot directory.
    pub fn hot(&self) -> &Path {
        &self.hot
    }

    /// The archive, if configured.
    pub fn archive(&self) -> Option<&Archive> {
        self.archive.as_ref()
    }

    /// Whether files can be put on `tier`.
    pub fn configured(&self, tier: Tier) -> bool {
        match tier {
            Tier::Hot => true,
            Tier::Warm => self.warm.is_some(),
            Tier::Cold => self.cold.is_some(),
            Tier::Archived => self.archive.is_some(),
        }
    }

    fn dir(&self, tier: Tier) -> Option<&Path> {
        match tier {
            Tier::Hot => Some(&self.hot),
            Tier::Warm => self.warm.as_deref(),
            Tier::Cold => self.cold.as_deref(),
            Tier::Archived => None,
        }
    }

    /// Where a file of relative name `rel` goes on `tier` (path or key).
    ///
    /// # Errors
    /// [`TierError::NotConfigured`].
    pub fn destination(&self, tier: Tier, rel: &str) -> Result<String, TierError> {
        if tier == Tier::Archived {
            let a = self
                .archive
                .as_ref()
                .ok_or(TierError::NotConfigured(tier))?;
            return Ok(a.key(rel));
        }
        let dir = self.dir(tier).ok_or(TierError::NotConfigured(tier))?;
        Ok(dir.join(rel).to_string_lossy().into_owned())
    }

    /// Copies the local file `src` to `dst` on `tier` and verifies the copy; its SHA-256.
    /// A partial destination is removed on failure.
    ///
    /// # Errors
    /// I/O, object store or verification failures.
    pub async fn copy(&self, src: &Path, tier: Tier, dst: &str) -> Result<String, TierError> {
        let len = tokio::fs::metadata(src).await.map_err(io(src))?.len();
        let result = if tier == Tier::Archived {
            let a = self
                .archive
                .as_ref()
                .ok_or(TierError::NotConfigured(tier))?;
            let sum = a.upload(src, dst, len).await?;
            let (got_len, got_sum) = a.digest(dst).await?;
            verify(dst, len, &sum, got_len, &got_sum).map(|()| sum)
        } else {
            let (src, dst) = (src.to_owned(), PathBuf::from(dst));
            tokio::task::spawn_blocking(move || copy_local(&src, &dst, len))
                .await
                .map_err(|e| TierError::Task(e.to_string()))?
        };
        if result.is_err() {
            let _ = self.remove(tier, dst).await;
        }
        result
    }

    /// Removes a file (or object) from a tier, and a partial copy of it; success when it was
    /// not there.
    ///
    /// # Errors
    /// I/O or object store failures other than "not found".
    pub async fn remove(&self, tier: Tier, path: &str) -> Result<(), TierError> {
        if tier == Tier::Archived {
            let a = self
                .archive
                .as_ref()
                .ok_or(TierError::NotConfigured(tier))?;
            return a.remove(path).await;
        }
        let path = PathBuf::from(path);
        tokio::task::spawn_blocking(move || {
            for p in [partial(&path), path.clone()] {
                match std::fs::remove_file(&p) {
                    Ok(()) => sync_parent(&p),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(TierError::Io { path: p, source }),
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| TierError::Task(e.to_string()))?
    }

    /// SHA-256 of a local file.
    ///
    /// # Errors
    /// I/O failures.
    pub async fn checksum(path: &Path) -> Result<String, TierError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || digest_file(&path).map(|(_, s)| s))
            .await
            .map_err(|e| TierError::Task(e.to_string()))?
    }
}

fn verify(dst: &str, len: u64, sum: &str, got_len: u64, got_sum: &str) -> Result<(), TierError> {
    if got_len != len {
        return Err(TierError::Verify {
            path: dst.to_owned(),
            what: format!("{got_len} bytes, expected {len}"),
        });
    }
    if got_sum != sum {
        return Err(TierError::Verify {
            path: dst.to_owned(),
            what: format!("sha256 {got_sum}, expected {sum}"),
        });
    }
    Ok(())
}

fn partial(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// Syncs the directory holding `path` so a create, rename or unlink survives a power loss.
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
}

fn digest_file(path: &Path) -> Result<(u64, String), TierError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        len += n as u64;
        hash.update(&buf[..n]);
    }
    Ok((len, hex(&hash.finalize())))
}

/// Copies to `{dst}.partial`, syncs, renames to `dst`, then reads `dst` back to verify.
fn copy_local(src: &Path, dst: &Path, len: u64) -> Result<String, TierError> {
    if let Some(dir) = dst.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let tmp = partial(dst);
    let mut input = std::fs::File::open(src).map_err(io(src))?;
    let mut out = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut copied = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(io(src))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io(&tmp))?;
        copied += n as u64;
    }
    out.sync_all().map_err(io(&tmp))?;
    drop(out);
    let sum = hex(&hash.finalize());
    if copied != len {
        return Err(TierError::Verify {
            path: src.display().to_string(),
            what: format!("source changed size while copying ({copied} of {len} bytes)"),
        });
    }
    std::fs::rename(&tmp, dst).map_err(io(dst))?;
    sync_parent(dst);
    let (got_len, got_sum) = digest_file(dst)?;
    verify(&dst.display().to_string(), len, &sum, got_len, &got_sum)?;
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_urls() {
        assert!(matches!(
            Archive::from_url("http://x/y"),
            Err(TierError::Config(_))
        ));
        assert!(matches!(
            Archive::from_url("s3:///p"),
            Err(TierError::Config(_))
        ));
        let a = Archive::from_url("s3://bucket/some/prefix/").unwrap();
        assert_eq!(
            a.key("cam/2026-01-01/f.mp4"),
            "some/prefix/cam/2026-01-01/f.mp4"
        );
        assert_eq!(a.url("k"), "s3://bucket/k");
        let b = Archive::from_url("s3://bucket").unwrap();
        assert_eq!(b.key("f.mp4"), "f.mp4");
    }

    #[tokio::test]
    async fn local_copies_verify_and_clean_up() {
        let root = std::env::temp_dir().join(format!("cp-tiers-{}", uuid::Uuid::new_v4()));
        let hot = root.join("hot");
        std::fs::create_dir_all(hot.join("cam/2026-01-01")).unwrap();
        let src = hot.join("cam/2026-01-01/f.mp4");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        let tiers = Tiers::new(hot.clone(), Some(root.join("warm")), None, None);
        assert!(tiers.configured(Tier::Warm) && !tiers.configured(Tier::Cold));
        assert!(matches!(
            tiers.destination(Tier::Cold, "x"),
            Err(TierError::NotConfigured(Tier::Cold))
        ));
        let dst = tiers
            .destination(Tier::Warm, "cam/2026-01-01/f.mp4")
            .unwrap();
        let sum = tiers.copy(&src, Tier::Warm, &dst).await.unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), data);
        assert_eq!(sum, hex(&Sha256::digest(&data)));
        assert_eq!(Tiers::checksum(&src).await.unwrap(), sum);
        assert!(!partial(Path::new(&dst)).exists());
        // A missing source fails and leaves nothing behind.
        let missing = hot.join("cam/2026-01-01/none.mp4");
        let dst2 = tiers
            .destination(Tier::Warm, "cam/2026-01-01/none.mp4")
            .unwrap();
        assert!(tiers.copy(&missing, Tier::Warm, &dst2).await.is_err());
        assert!(!Path::new(&dst2).exists());
        // Removing twice is fine; a leftover partial goes too.
        std::fs::write(partial(Path::new(&dst)), b"x").unwrap();
        tiers.remove(Tier::Warm, &dst).await.unwrap();
        tiers.remove(Tier::Warm, &dst).await.unwrap();
        assert!(!Path::new(&dst).exists() && !partial(Path::new(&dst)).exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
