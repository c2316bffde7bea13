//! The local stream: a durable, sharded, append-only log on disk, standing in for Kinesis.
//!
//! Layout under the data directory:
//! - `stream.json`: the shard count the log was created with (a key's shard must not change).
//! - `shard-<n>/<first sequence number, 20 digits>.log`: segments of frames; the newest is active.
//! - `checkpoints/shard-<n>`: the consumer's last processed sequence number.
//!
//! A frame is `[payload length u32 LE][CRC-32 of payload u32 LE][payload]`, the payload being
//! `[version u8][sequence u64 LE][arrival unix ms i64 LE][key length u32 LE][key][data]`. Appends are
//! `sync_data`ed before `put_all` returns, so an acknowledged record survives a crash. A crash in the
//! middle of an append leaves a torn frame at the tail of the active segment, which opening truncates.
//! Readers only see frames up to the synced length, so a record is never read before it is durable.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::crc32::crc32;
use super::{unix_now_ms, EmbeddedError};
use crate::model::stable_hash;
use crate::ports::{
    SequenceNumber, StreamEntry, StreamError, StreamRecord, StreamSink, StreamSource,
};

/// Largest record (partition key + data) accepted, as on Kinesis.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

const FRAME_HEADER_BYTES: u64 = 8;
const FRAME_VERSION: u8 = 1;
/// version + sequence + arrival + key length.
const PAYLOAD_FIXED_BYTES: usize = 1 + 8 + 8 + 4;
/// A header announcing more than this is garbage (a torn or corrupt frame), not a reason to allocate.
const MAX_PAYLOAD_BYTES: usize = PAYLOAD_FIXED_BYTES + MAX_RECORD_BYTES;
const SEGMENT_SUFFIX: &str = ".log";
const META_FILE: &str = "stream.json";
const CHECKPOINT_DIR: &str = "checkpoints";
const META_VERSION: u32 = 1;

/// How an [`EmbeddedStream`] is laid out and how long it keeps consumed records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Parallel, independently ordered lanes. Fixed when the log is created.
    pub shards: u32,
    /// The active segment is sealed and a new one started once it reaches this size.
    pub segment_bytes: u64,
    /// Sealed segments entirely at or below the shard's checkpoint are deleted once they are older
    /// than this (by their last write).
    pub retention: Duration,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            shards: 4,
            segment_bytes: 8 * 1024 * 1024,
            retention: Duration::from_secs(24 * 3600),
        }
    }
}

/// The on-disk stream. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct EmbeddedStream {
    inner: Arc<Inner>,
    released: super::Released,
}

struct Inner {
    dir: PathBuf,
    options: StreamOptions,
    shards: Vec<Shard>,
    checkpoints: Mutex<HashMap<String, SequenceNumber>>,
    notify: Arc<Notify>,
    /// Backpressure bound in milliseconds (0: off): see [`EmbeddedStream::set_max_consumer_lag`].
    max_lag_ms: AtomicU64,
    /// Appends being held while their shard is over the bound.
    held: tokio::sync::Semaphore,
    /// Signals, when dropped last, that no append or read holds the log any more.
    _guard: super::released::ReleaseGuard,
}

/// Appends held at once while their shard is behind; more are refused at once.
const MAX_HELD_APPENDS: usize = 64;
/// How often a held append looks at the lag again.
const HOLD_POLL: Duration = Duration::from_millis(5);

struct Shard {
    id: String,
    dir: PathBuf,
    /// Serializes appends so frames of concurrent `put_all` calls never interleave.
    writer: Mutex<Writer>,
    /// Appends waiting for the writer. Whoever holds the writer next writes all of them with one
    /// `sync_data` (group commit), so concurrent producers share the cost of an fsync.
    queue: Mutex<Vec<Arc<AppendRequest>>>,
    /// What readers may see: only frames that are already synced.
    view: Mutex<View>,
    /// Where the last read stopped, so a consumer following the shard does not rescan its segment.
    hint: Mutex<Option<ReadHint>>,
    /// Appended but not yet processed: what the consumer lag is measured on.
    backlog: Mutex<Backlog>,
}

/// Most groups remembered per shard for the lag; beyond it the newest groups merge (which can only
/// make the lag read longer, never shorter).
const MAX_BACKLOG_GROUPS: usize = 65_536;

/// Appended groups not yet marked consumed, oldest first: (last sequence number of the group, when it
/// was appended in unix ms). One entry per group commit, so a few hundred per second at most.
#[derive(Default)]
struct Backlog {
    groups: VecDeque<(u64, i64)>,
}

impl Backlog {
    fn appended(&mut self, last_seq: u64, arrival_ms: i64) {
        if self.groups.len() >= MAX_BACKLOG_GROUPS {
            if let Some(newest) = self.groups.back_mut() {
                newest.0 = last_seq;
                return;
            }
        }
        self.groups.push_back((last_seq, arrival_ms));
    }

    fn consumed(&mut self, up_to: u64) {
        while self.groups.front().is_some_and(|(last, _)| *last <= up_to) {
            self.groups.pop_front();
        }
    }

    /// How long the oldest unprocessed record has waited, in ms (0 when nothing waits).
    fn lag_ms(&self, now_ms: i64) -> u64 {
        self.groups.front().map_or(0, |(_, arrival)| {
            u64::try_from(now_ms - arrival).unwrap_or(0)
        })
    }
}

struct Writer {
    file: File,
    /// Synced length of the active segment; the next frame is written here.
    len: u64,
    next_seq: u64,
}

struct AppendRequest {
    entries: Vec<StreamEntry>,
    /// Set by the thread that wrote this request's group.
    outcome: Mutex<Option<Result<(), String>>>,
}

#[derive(Clone)]
struct View {
    /// Oldest first; the last one is active.
    segments: Vec<Segment>,
    active_len: u64,
    next_seq: u64,
}

#[derive(Clone)]
struct Segment {
    /// No record in this segment has a lower sequence number, and every record in the previous
    /// segment has a lower one.
    first_seq: u64,
    path: PathBuf,
}

#[derive(Clone, Copy)]
struct ReadHint {
    next_seq: u64,
    segment_first_seq: u64,
    offset: u64,
}

#[derive(Serialize, Deserialize)]
struct StreamMeta {
    version: u32,
    shards: u32,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock cannot leave these structures half-updated in a way a later
    // caller could not cope with (the file state is re-derived from synced lengths), so carry on.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EmbeddedStream {
    /// Resolves once the log is closed: every clone and every append or read still running on the
    /// blocking pool has dropped it.
    pub fn released(&self) -> super::Released {
        self.released.clone()
    }

    /// Opens (or creates) the log in `dir` with `shards` shards and default segment size and retention.
    pub fn open(dir: &Path, shards: u32) -> Result<EmbeddedStream, EmbeddedError> {
        EmbeddedStream::open_with(
            dir,
            StreamOptions {
                shards,
                ..StreamOptions::default()
            },
        )
    }

    /// Opens (or creates) the log in `dir`, recovering each shard's last sequence number and
    /// truncating a torn frame left at the tail by a crash.
    pub fn open_with(dir: &Path, options: StreamOptions) -> Result<EmbeddedStream, EmbeddedError> {
        if options.shards == 0 {
            return Err(EmbeddedError::InvalidOption(
                "a stream needs at least one shard".into(),
            ));
        }
        if options.segment_bytes == 0 {
            return Err(EmbeddedError::InvalidOption(
                "segment size must be positive".into(),
            ));
        }
        fs::create_dir_all(dir).map_err(EmbeddedError::io("creating", dir))?;
        check_or_write_meta(dir, options.shards)?;
        let checkpoints = load_checkpoints(&dir.join(CHECKPOINT_DIR))?;
        let mut shards = Vec::with_capacity(options.shards as usize);
        for index in 0..options.shards {
            let id = shard_name(index);
            let checkpoint = checkpoints.get(&id).and_then(sequence_as_u64);
            shards.push(Shard::open(dir.join(&id), id, checkpoint)?);
        }
        let (guard, released) = super::released::ReleaseGuard::new();
        Ok(EmbeddedStream {
            released,
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                options,
                shards,
                checkpoints: Mutex::new(checkpoints),
                notify: Arc::new(Notify::new()),
                max_lag_ms: AtomicU64::new(0),
                held: tokio::sync::Semaphore::new(MAX_HELD_APPENDS),
                _guard: guard,
            }),
        })
    }

    /// Shard ids, in shard order (`shard-0`, `shard-1`, …).
    pub fn shard_names(&self) -> Vec<String> {
        self.inner.shards.iter().map(|s| s.id.clone()).collect()
    }

    /// The shard every record with `partition_key` lands on.
    pub fn shard_of(&self, partition_key: &str) -> &str {
        &self.inner.shards[self.inner.shard_index(partition_key)].id
    }

    /// Woken (`notify_waiters`) after every successful append, so consumers need not poll.
    /// Create the `notified()` future before reading, then await it when the read came back empty.
    /// Like [`StreamSource::read`], and stops once the records' data reaches `max_bytes` (always
    /// returning at least one record when there is one), so a consumer's batch is bounded in memory
    /// whatever the record sizes.
    pub async fn read_batch(
        &self,
        shard_id: &str,
        after: Option<&SequenceNumber>,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<StreamRecord>, StreamError> {
        let start = match after {
            None => 0,
            // Larger than any sequence number this log hands out: nothing comes after it.
            Some(seq) => match sequence_as_u64(seq) {
                Some(n) => n.saturating_add(1),
                None => return Ok(Vec::new()),
            },
        };
        let inner = self.inner.clone();
        let shard_id = shard_id.to_string();
        let limit = ReadLimit { max, max_bytes };
        tokio::task::spawn_blocking(move || inner.read(&shard_id, start, limit))
            .await
            .map_err(|e| StreamError::Unavailable(format!("read task failed: {e}")))?
    }

    pub fn notifier(&self) -> Arc<Notify> {
        self.inner.notify.clone()
    }

    /// Persists the consumer's progress on `shard_id`: everything up to `seq` is processed. Also
    /// deletes the shard's segments that this makes eligible under the retention.
    pub fn checkpoint(&self, shard_id: &str, seq: &SequenceNumber) -> Result<(), EmbeddedError> {
        let shard = self
            .inner
            .shard(shard_id)
            .ok_or_else(|| EmbeddedError::UnknownShard(shard_id.to_string()))?;
        let dir = self.inner.dir.join(CHECKPOINT_DIR);
        fs::create_dir_all(&dir).map_err(EmbeddedError::io("creating", &dir))?;
        write_atomically(&dir, shard_id, seq.as_str().as_bytes())?;
        lock(&self.inner.checkpoints).insert(shard_id.to_string(), seq.clone());
        self.mark_consumed(shard_id, seq);
        if let Err(e) = self.inner.purge_shard(shard, SystemTime::now()) {
            // Retention is housekeeping; the checkpoint itself is saved.
            tracing::warn!(shard = shard_id, error = %e, "deleting old stream segments failed");
        }
        Ok(())
    }

    /// The last checkpoint saved for `shard_id` (also across restarts), if any.
    pub fn checkpoint_of(&self, shard_id: &str) -> Option<SequenceNumber> {
        lock(&self.inner.checkpoints).get(shard_id).cloned()
    }

    /// Tells the stream that the consumer has processed `shard_id` up to `seq` without persisting it
    /// (that is [`EmbeddedStream::checkpoint`], which implies this): the consumer lag and the
    /// backpressure follow processing, not the less frequent durable checkpoints.
    pub fn mark_consumed(&self, shard_id: &str, seq: &SequenceNumber) {
        if let (Some(shard), Some(seq)) = (self.inner.shard(shard_id), sequence_as_u64(seq)) {
            lock(&shard.backlog).consumed(seq);
        }
    }

    /// How long the oldest record of `shard_id` that the consumer has not processed has waited
    /// (zero when it is caught up). Records left from before a restart count from the restart.
    pub fn consumer_lag(&self, shard_id: &str) -> Option<Duration> {
        let now = unix_now_ms();
        self.inner
            .shard(shard_id)
            .map(|s| Duration::from_millis(lock(&s.backlog).lag_ms(now)))
    }

    /// Backpressure: while a shard's consumer lag is over `max_lag`, `put_all` holds entries for
    /// that shard for up to `max_lag` more (at most 64 calls at once), appending them as soon as the
    /// lag is back under the bound; still behind then, it refuses them (nothing written;
    /// `StreamError::Unavailable` naming the lag, which the receiver answers with 503 and
    /// `Retry-After`), so the producer is told to come back instead of the consumer falling further
    /// behind. `None` (the default) never holds or refuses.
    pub fn set_max_consumer_lag(&self, max_lag: Option<Duration>) {
        let ms = max_lag.map_or(0, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        self.inner.max_lag_ms.store(ms, Ordering::Relaxed);
    }

    /// Deletes, on every shard, sealed segments whose records are all at or below the shard's
    /// checkpoint and whose last write is older than the retention at `now`. Returns how many.
    pub fn purge_segments(&self, now: SystemTime) -> Result<usize, EmbeddedError> {
        let mut deleted = 0;
        for shard in &self.inner.shards {
            deleted += self.inner.purge_shard(shard, now)?;
        }
        Ok(deleted)
    }

    /// Number of segment files a shard currently keeps (for retention checks and diagnostics).
    pub fn segment_count(&self, shard_id: &str) -> Option<usize> {
        self.inner
            .shard(shard_id)
            .map(|s| lock(&s.view).segments.len())
    }
}

#[async_trait]
impl StreamSink for EmbeddedStream {
    async fn put_all(&self, entries: Vec<StreamEntry>) -> Result<(), StreamError> {
        if entries.is_empty() {
            return Ok(());
        }
        // Refuse the whole call before writing anything, so an oversized record never leaves a
        // partial batch behind.
        for entry in &entries {
            let size = entry.partition_key.len() + entry.data.len();
            if size > MAX_RECORD_BYTES {
                return Err(StreamError::RecordTooLarge {
                    size,
                    limit: MAX_RECORD_BYTES,
                });
            }
        }
        let mut verdict = self.inner.check_backpressure(&entries);
        if verdict.is_err() {
            // Hold the request for up to the bound before refusing: the consumer usually drains
            // the backlog within a batch, and a producer held a few milliseconds loses far less
            // than one told to come back after a whole second (`Retry-After` has no finer unit).
            // Only so many are held at once, so held requests bound their memory.
            if let Ok(_held) = self.inner.held.try_acquire() {
                let hold = Duration::from_millis(self.inner.max_lag_ms.load(Ordering::Relaxed));
                let until = tokio::time::Instant::now() + hold;
                while verdict.is_err() && tokio::time::Instant::now() < until {
                    tokio::time::sleep(HOLD_POLL).await;
                    verdict = self.inner.check_backpressure(&entries);
                }
            }
        }
        verdict?;
        let inner = self.inner.clone();
        let appended = tokio::task::spawn_blocking(move || inner.append(entries))
            .await
            .map_err(|e| StreamError::Unavailable(format!("append task failed: {e}")))?;
        // Also after a partial failure: the shards that did append have records to read.
        self.inner.notify.notify_waiters();
        appended
    }
}

#[async_trait]
impl StreamSource for EmbeddedStream {
    async fn shard_ids(&self) -> Result<Vec<String>, StreamError> {
        Ok(self.shard_names())
    }

    async fn read(
        &self,
        shard_id: &str,
        after: Option<&SequenceNumber>,
        max: usize,
    ) -> Result<Vec<StreamRecord>, StreamError> {
        self.read_batch(shard_id, after, max, usize::MAX).await
    }
}

impl Inner {
    fn shard_index(&self, partition_key: &str) -> usize {
        (stable_hash(&[partition_key]) % self.shards.len() as u64) as usize
    }

    fn shard(&self, shard_id: &str) -> Option<&Shard> {
        self.shards.iter().find(|s| s.id == shard_id)
    }

    /// Refuses the whole call when a shard it writes to is behind by more than the bound.
    fn check_backpressure(&self, entries: &[StreamEntry]) -> Result<(), StreamError> {
        let max_lag_ms = self.max_lag_ms.load(Ordering::Relaxed);
        if max_lag_ms == 0 {
            return Ok(());
        }
        let now = unix_now_ms();
        let mut checked = vec![false; self.shards.len()];
        for entry in entries {
            let index = self.shard_index(&entry.partition_key);
            if std::mem::replace(&mut checked[index], true) {
                continue;
            }
            let shard = &self.shards[index];
            let lag_ms = lock(&shard.backlog).lag_ms(now);
            if lag_ms > max_lag_ms {
                return Err(StreamError::Unavailable(format!(
                    "the aggregator is {:.1} s behind on {}, over the limit of {:.1} s \
                     (--max-aggregator-lag); nothing of this request was kept, retry later",
                    lag_ms as f64 / 1000.0,
                    shard.id,
                    max_lag_ms as f64 / 1000.0,
                )));
            }
        }
        Ok(())
    }

    fn append(&self, entries: Vec<StreamEntry>) -> Result<(), StreamError> {
        let mut per_shard: Vec<Vec<StreamEntry>> = vec![Vec::new(); self.shards.len()];
        for entry in entries {
            per_shard[self.shard_index(&entry.partition_key)].push(entry);
        }
        let mut work: Vec<(&Shard, Vec<StreamEntry>)> = self
            .shards
            .iter()
            .zip(per_shard)
            .filter(|(_, entries)| !entries.is_empty())
            .collect();
        let segment_bytes = self.options.segment_bytes;
        let outcomes = if work.len() == 1 {
            let (shard, entries) = work.remove(0);
            vec![shard.append(entries, segment_bytes)]
        } else {
            // Each shard syncs its own file: do them side by side rather than one fsync after another.
            std::thread::scope(|scope| {
                let handles: Vec<_> = work
                    .into_iter()
                    .map(|(shard, entries)| {
                        scope.spawn(move || shard.append(entries, segment_bytes))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err("a shard append panicked".to_string()))
                    })
                    .collect()
            })
        };
        outcomes
            .into_iter()
            .collect::<Result<Vec<()>, String>>()
            .map(|_| ())
            .map_err(StreamError::Unavailable)
    }

    fn read(
        &self,
        shard_id: &str,
        start: u64,
        limit: ReadLimit,
    ) -> Result<Vec<StreamRecord>, StreamError> {
        let shard = self
            .shard(shard_id)
            .ok_or_else(|| StreamError::Unavailable(format!("no shard named {shard_id:?}")))?;
        shard
            .read(start, limit)
            .map_err(|e| StreamError::Unavailable(e.to_string()))
    }

    fn purge_shard(&self, shard: &Shard, now: SystemTime) -> Result<usize, EmbeddedError> {
        let Some(checkpoint) = lock(&self.checkpoints)
            .get(&shard.id)
            .and_then(sequence_as_u64)
        else {
            // Nothing is known to be processed: keep everything.
            return Ok(0);
        };
        let segments = lock(&shard.view).segments.clone();
        let mut doomed = Vec::new();
        // Segment i holds sequence numbers below segments[i + 1].first_seq; the active (last) one is
        // never deleted. Both conditions only get truer towards older segments, so stop at the first
        // segment that must stay.
        for pair in segments.windows(2) {
            let fully_processed = pair[1].first_seq <= checkpoint.saturating_add(1);
            if !fully_processed || !older_than(&pair[0].path, now, self.options.retention)? {
                break;
            }
            doomed.push(pair[0].first_seq);
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        let removed: Vec<Segment> = {
            let mut view = lock(&shard.view);
            let (gone, kept) = view
                .segments
                .drain(..)
                .partition(|s| doomed.contains(&s.first_seq));
            view.segments = kept;
            gone
        };
        for segment in &removed {
            match fs::remove_file(&segment.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(EmbeddedError::io("deleting", &segment.path)(e)),
            }
        }
        sync_dir(&shard.dir)?;
        Ok(removed.len())
    }
}

impl Shard {
    fn open(dir: PathBuf, id: String, checkpoint: Option<u64>) -> Result<Shard, EmbeddedError> {
        fs::create_dir_all(&dir).map_err(EmbeddedError::io("creating", &dir))?;
        let mut segments = list_segments(&dir)?;
        // A checkpoint beyond the log (the log's tail was lost) must still leave sequence numbers
        // rising past everything the consumer has seen.
        let floor = checkpoint.map_or(1, |c| c.saturating_add(1)).max(1);
        if segments.is_empty() {
            let path = segment_path(&dir, floor);
            create_segment(&path)?;
            sync_dir(&dir)?;
            segments.push(Segment {
                first_seq: floor,
                path,
            });
        }
        let active = segments.last().cloned().ok_or_else(|| EmbeddedError::Io {
            action: "listing segments in",
            path: dir.clone(),
            source: io::Error::other("no active segment"),
        })?;
        let (file, len, last_seq) = recover_active_segment(&active.path)?;
        let next_seq = last_seq
            .map_or(active.first_seq, |s| s.saturating_add(1))
            .max(active.first_seq)
            .max(floor);
        // Records past the checkpoint from before a restart wait from now on.
        let mut backlog = Backlog::default();
        if next_seq > floor {
            backlog.appended(next_seq - 1, unix_now_ms());
        }
        Ok(Shard {
            id,
            dir,
            writer: Mutex::new(Writer {
                file,
                len,
                next_seq,
            }),
            queue: Mutex::new(Vec::new()),
            view: Mutex::new(View {
                segments,
                active_len: len,
                next_seq,
            }),
            hint: Mutex::new(None),
            backlog: Mutex::new(backlog),
        })
    }

    /// Appends `entries` contiguously and durably. Concurrent calls are coalesced: the first to get
    /// the writer writes every queued request in one go.
    fn append(&self, entries: Vec<StreamEntry>, segment_bytes: u64) -> Result<(), String> {
        let request = Arc::new(AppendRequest {
            entries,
            outcome: Mutex::new(None),
        });
        lock(&self.queue).push(request.clone());
        let mut writer = lock(&self.writer);
        if let Some(outcome) = lock(&request.outcome).take() {
            // An earlier writer took this request along with its own group.
            return outcome;
        }
        let group = std::mem::take(&mut *lock(&self.queue));
        let outcome = self
            .write_group(&mut writer, &group, segment_bytes)
            .map_err(|e| e.to_string());
        for member in &group {
            *lock(&member.outcome) = Some(outcome.clone());
        }
        outcome
    }

    fn write_group(
        &self,
        writer: &mut Writer,
        group: &[Arc<AppendRequest>],
        segment_bytes: u64,
    ) -> Result<(), EmbeddedError> {
        if writer.len >= segment_bytes {
            self.roll(writer)?;
        }
        let arrival_ms = unix_now_ms();
        let mut buffer = Vec::new();
        let mut seq = writer.next_seq;
        for entry in group.iter().flat_map(|request| &request.entries) {
            encode_frame(
                &mut buffer,
                seq,
                arrival_ms,
                &entry.partition_key,
                &entry.data,
            );
            seq += 1;
        }
        let start = writer.len;
        if let Err(e) = write_synced(&mut writer.file, start, &buffer) {
            // Drop whatever part reached the file so the next append starts on a frame boundary.
            let _ = writer.file.set_len(start);
            return Err(EmbeddedError::io("appending to", self.active_path())(e));
        }
        writer.len = start + buffer.len() as u64;
        writer.next_seq = seq;
        let mut view = lock(&self.view);
        view.active_len = writer.len;
        view.next_seq = writer.next_seq;
        drop(view);
        if seq > 0 {
            lock(&self.backlog).appended(seq - 1, arrival_ms);
        }
        Ok(())
    }

    fn active_path(&self) -> PathBuf {
        lock(&self.view)
            .segments
            .last()
            .map_or_else(|| self.dir.clone(), |s| s.path.clone())
    }

    /// Seals the active segment and starts a new one named after the next sequence number.
    fn roll(&self, writer: &mut Writer) -> Result<(), EmbeddedError> {
        let path = segment_path(&self.dir, writer.next_seq);
        let file = create_segment(&path)?;
        sync_dir(&self.dir)?;
        writer.file = file;
        writer.len = 0;
        let mut view = lock(&self.view);
        view.segments.push(Segment {
            first_seq: writer.next_seq,
            path,
        });
        view.active_len = 0;
        Ok(())
    }

    fn read(&self, start: u64, limit: ReadLimit) -> Result<Vec<StreamRecord>, EmbeddedError> {
        let view = lock(&self.view).clone();
        let mut records = Vec::new();
        let mut bytes = 0usize;
        if limit.max == 0 || start >= view.next_seq || view.segments.is_empty() {
            return Ok(records);
        }
        let hint = *lock(&self.hint);
        let first = view
            .segments
            .partition_point(|s| s.first_seq <= start)
            .saturating_sub(1);
        let last_index = view.segments.len() - 1;
        let mut stop = None;
        for (index, segment) in view.segments.iter().enumerate().skip(first) {
            let limit_bytes = if index == last_index {
                view.active_len
            } else {
                match fs::metadata(&segment.path) {
                    Ok(meta) => meta.len(),
                    // Deleted by retention after the snapshot: its records were all processed.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(EmbeddedError::io("reading", &segment.path)(e)),
                }
            };
            let offset = match hint {
                Some(h)
                    if index == first
                        && h.segment_first_seq == segment.first_seq
                        && h.next_seq == start
                        && h.offset <= limit_bytes =>
                {
                    h.offset
                }
                _ => 0,
            };
            let file = match File::open(&segment.path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(EmbeddedError::io("opening", &segment.path)(e)),
            };
            let end = read_segment(
                file,
                &segment.path,
                offset,
                limit_bytes,
                start,
                limit,
                &self.id,
                &mut records,
                &mut bytes,
            )?;
            stop = Some((segment.first_seq, end));
            if limit.reached(records.len(), bytes) {
                break;
            }
        }
        if let (Some(last), Some((segment_first_seq, offset))) = (records.last(), stop) {
            if let Some(next_seq) = sequence_as_u64(&last.sequence_number) {
                *lock(&self.hint) = Some(ReadHint {
                    next_seq: next_seq.saturating_add(1),
                    segment_first_seq,
                    offset,
                });
            }
        }
        Ok(records)
    }
}

fn write_synced(file: &mut File, at: u64, bytes: &[u8]) -> io::Result<()> {
    file.seek(SeekFrom::Start(at))?;
    file.write_all(bytes)?;
    file.sync_data()
}

/// How much one read returns: at most `max` records, and no more once their data reaches
/// `max_bytes`.
#[derive(Clone, Copy)]
struct ReadLimit {
    max: usize,
    max_bytes: usize,
}

impl ReadLimit {
    fn reached(&self, records: usize, bytes: usize) -> bool {
        records >= self.max || bytes >= self.max_bytes
    }
}

/// Appends to `out` the records of one segment from `offset` up to `limit` bytes with a sequence
/// number of at least `start`, until `out` holds what `read` allows (`held` counts the data bytes in `out`).
/// Returns the offset where reading stopped.
#[allow(clippy::too_many_arguments)]
fn read_segment(
    file: File,
    path: &Path,
    offset: u64,
    limit: u64,
    start: u64,
    read: ReadLimit,
    shard_id: &str,
    out: &mut Vec<StreamRecord>,
    held: &mut usize,
) -> Result<u64, EmbeddedError> {
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    reader
        .seek(SeekFrom::Start(offset))
        .map_err(EmbeddedError::io("reading", path))?;
    let mut position = offset;
    while !read.reached(out.len(), *held) {
        match read_frame(&mut reader, limit.saturating_sub(position))
            .map_err(EmbeddedError::io("reading", path))?
        {
            FrameRead::End => break,
            FrameRead::Invalid(reason) => {
                // Only possible within synced data if the disk corrupted it; skipping the rest of the
                // segment keeps the shard moving, like a poison record on Kinesis.
                tracing::warn!(
                    segment = %path.display(),
                    offset = position,
                    %reason,
                    "skipping the unreadable rest of a stream segment"
                );
                break;
            }
            FrameRead::Frame { frame, bytes } => {
                position += bytes;
                if frame.seq >= start {
                    *held += frame.data.len();
                    out.push(StreamRecord {
                        shard_id: shard_id.to_string(),
                        sequence_number: SequenceNumber::from_u128(u128::from(frame.seq)),
                        partition_key: frame.partition_key,
                        data: frame.data,
                        arrival_unix_ms: frame.arrival_ms,
                    });
                }
            }
        }
    }
    Ok(position)
}

struct Frame {
    seq: u64,
    arrival_ms: i64,
    partition_key: String,
    data: Bytes,
}

enum FrameRead {
    Frame {
        frame: Frame,
        bytes: u64,
    },
    /// No bytes left before the limit.
    End,
    /// A torn or corrupt frame starts here.
    Invalid(String),
}

fn encode_frame(out: &mut Vec<u8>, seq: u64, arrival_ms: i64, key: &str, data: &[u8]) {
    let payload_len = PAYLOAD_FIXED_BYTES + key.len() + data.len();
    // Records are limited to MAX_RECORD_BYTES before encoding, so the lengths fit in u32.
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    let crc_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let payload_at = out.len();
    out.push(FRAME_VERSION);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&arrival_ms.to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(data);
    let crc = crc32(&out[payload_at..]);
    out[crc_at..payload_at].copy_from_slice(&crc.to_le_bytes());
}

/// Reads one frame when `remaining` bytes of valid log may follow.
fn read_frame(reader: &mut impl Read, remaining: u64) -> io::Result<FrameRead> {
    if remaining == 0 {
        return Ok(FrameRead::End);
    }
    if remaining < FRAME_HEADER_BYTES {
        return Ok(FrameRead::Invalid(format!(
            "{remaining} bytes are too few for a frame header"
        )));
    }
    let mut header = [0u8; FRAME_HEADER_BYTES as usize];
    if let Err(e) = reader.read_exact(&mut header) {
        return eof_as_invalid(e, "header");
    }
    let payload_len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let expected_crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if !(PAYLOAD_FIXED_BYTES..=MAX_PAYLOAD_BYTES).contains(&payload_len) {
        return Ok(FrameRead::Invalid(format!(
            "frame announces an impossible length of {payload_len} bytes"
        )));
    }
    if FRAME_HEADER_BYTES + payload_len as u64 > remaining {
        return Ok(FrameRead::Invalid(format!(
            "frame of {payload_len} bytes is cut short"
        )));
    }
    let mut payload = vec![0u8; payload_len];
    if let Err(e) = reader.read_exact(&mut payload) {
        return eof_as_invalid(e, "payload");
    }
    if crc32(&payload) != expected_crc {
        return Ok(FrameRead::Invalid("frame checksum mismatch".into()));
    }
    match decode_payload(payload) {
        Ok(frame) => Ok(FrameRead::Frame {
            frame,
            bytes: FRAME_HEADER_BYTES + payload_len as u64,
        }),
        Err(reason) => Ok(FrameRead::Invalid(reason)),
    }
}

fn eof_as_invalid(e: io::Error, part: &str) -> io::Result<FrameRead> {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        Ok(FrameRead::Invalid(format!(
            "file ends inside a frame {part}"
        )))
    } else {
        Err(e)
    }
}

fn decode_payload(payload: Vec<u8>) -> Result<Frame, String> {
    let fixed = payload
        .get(..PAYLOAD_FIXED_BYTES)
        .ok_or("frame payload is shorter than its fixed fields")?;
    if fixed[0] != FRAME_VERSION {
        return Err(format!("unknown frame version {}", fixed[0]));
    }
    let le8 = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&fixed[at..at + 8]);
        bytes
    };
    let seq = u64::from_le_bytes(le8(1));
    let arrival_ms = i64::from_le_bytes(le8(9));
    let key_len = u32::from_le_bytes([fixed[17], fixed[18], fixed[19], fixed[20]]) as usize;
    let key_end = PAYLOAD_FIXED_BYTES
        .checked_add(key_len)
        .filter(|end| *end <= payload.len())
        .ok_or("frame key runs past the payload")?;
    let partition_key = std::str::from_utf8(&payload[PAYLOAD_FIXED_BYTES..key_end])
        .map_err(|_| "frame key is not UTF-8".to_string())?
        .to_string();
    let data = Bytes::from(payload).slice(key_end..);
    Ok(Frame {
        seq,
        arrival_ms,
        partition_key,
        data,
    })
}

/// Opens the active segment, drops a torn tail, and returns it with its valid length and the last
/// sequence number it holds.
fn recover_active_segment(path: &Path) -> Result<(File, u64, Option<u64>), EmbeddedError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(EmbeddedError::io("opening", path))?;
    let file_len = file
        .metadata()
        .map_err(EmbeddedError::io("reading", path))?
        .len();
    let mut reader = BufReader::with_capacity(
        64 * 1024,
        file.try_clone()
            .map_err(EmbeddedError::io("opening", path))?,
    );
    let mut valid_len = 0u64;
    let mut last_seq = None;
    loop {
        match read_frame(&mut reader, file_len - valid_len)
            .map_err(EmbeddedError::io("recovering", path))?
        {
            FrameRead::Frame { frame, bytes } => {
                valid_len += bytes;
                last_seq = Some(frame.seq);
            }
            FrameRead::End => break,
            FrameRead::Invalid(reason) => {
                tracing::warn!(
                    segment = %path.display(),
                    valid_bytes = valid_len,
                    dropped_bytes = file_len - valid_len,
                    %reason,
                    "truncating a torn frame at the end of the stream log"
                );
                file.set_len(valid_len)
                    .and_then(|()| file.sync_all())
                    .map_err(EmbeddedError::io("truncating", path))?;
                break;
            }
        }
    }
    Ok((file, valid_len, last_seq))
}

fn list_segments(dir: &Path) -> Result<Vec<Segment>, EmbeddedError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(EmbeddedError::io("listing", dir))? {
        let entry = entry.map_err(EmbeddedError::io("listing", dir))?;
        let name = entry.file_name();
        let Some(first_seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push(Segment {
            first_seq,
            path: entry.path(),
        });
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok(segments)
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}{SEGMENT_SUFFIX}"))
}

fn create_segment(path: &Path) -> Result<File, EmbeddedError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(EmbeddedError::io("creating", path))
}

fn shard_name(index: u32) -> String {
    format!("shard-{index}")
}

/// This log's sequence numbers are u64; anything larger was not handed out by it.
fn sequence_as_u64(seq: &SequenceNumber) -> Option<u64> {
    seq.as_str().parse().ok()
}

fn older_than(path: &Path, now: SystemTime, retention: Duration) -> Result<bool, EmbeddedError> {
    let modified = match fs::metadata(path).and_then(|m| m.modified()) {
        Ok(modified) => modified,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(EmbeddedError::io("reading", path)(e)),
    };
    // A modification time after `now` (clock skew) counts as age zero.
    let age = now.duration_since(modified).unwrap_or(Duration::ZERO);
    Ok(age >= retention)
}

fn check_or_write_meta(dir: &Path, shards: u32) -> Result<(), EmbeddedError> {
    let path = dir.join(META_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            let meta: StreamMeta =
                serde_json::from_slice(&bytes).map_err(|e| EmbeddedError::Unrecognized {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            if meta.version != META_VERSION {
                return Err(EmbeddedError::Unrecognized {
                    path,
                    reason: format!("unknown stream log version {}", meta.version),
                });
            }
            if meta.shards != shards {
                return Err(EmbeddedError::ShardCountMismatch {
                    dir: dir.to_path_buf(),
                    existing: meta.shards,
                    requested: shards,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let meta = StreamMeta {
                version: META_VERSION,
                shards,
            };
            let bytes = serde_json::to_vec(&meta).map_err(|e| EmbeddedError::Unrecognized {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            write_atomically(dir, META_FILE, &bytes)
        }
        Err(e) => Err(EmbeddedError::io("reading", path)(e)),
    }
}

fn load_checkpoints(dir: &Path) -> Result<HashMap<String, SequenceNumber>, EmbeddedError> {
    let mut checkpoints = HashMap::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(checkpoints),
        Err(e) => return Err(EmbeddedError::io("listing", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(EmbeddedError::io("listing", dir))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name.ends_with(".tmp") {
            continue;
        }
        let path = entry.path();
        let text = fs::read_to_string(&path).map_err(EmbeddedError::io("reading", &path))?;
        let seq = SequenceNumber::parse(text.trim()).map_err(|e| EmbeddedError::Unrecognized {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        checkpoints.insert(name, seq);
    }
    Ok(checkpoints)
}

/// Replaces `dir/name` with `bytes` so that a crash leaves either the old or the new content.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), EmbeddedError> {
    let target = dir.join(name);
    let temp = dir.join(format!("{name}.tmp"));
    let mut file = File::create(&temp).map_err(EmbeddedError::io("creating", &temp))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_data())
        .map_err(EmbeddedError::io("writing", &temp))?;
    fs::rename(&temp, &target).map_err(EmbeddedError::io("replacing", &target))?;
    sync_dir(dir)
}

/// Makes a created, renamed or deleted directory entry durable.
fn sync_dir(dir: &Path) -> Result<(), EmbeddedError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(EmbeddedError::io("syncing", dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_bytes(seq: u64, key: &str, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&mut out, seq, 1_700_000_000_000, key, data);
        out
    }

    #[test]
    fn frame_round_trips_key_data_and_sequence() {
        let bytes = frame_bytes(42, "api", b"payload");
        let mut reader = &bytes[..];
        match read_frame(&mut reader, bytes.len() as u64).unwrap() {
            FrameRead::Frame { frame, bytes: n } => {
                assert_eq!(frame.seq, 42);
                assert_eq!(frame.partition_key, "api");
                assert_eq!(&frame.data[..], b"payload");
                assert_eq!(frame.arrival_ms, 1_700_000_000_000);
                assert_eq!(n, bytes.len() as u64);
            }
            _ => panic!("expected a frame"),
        }
    }

    #[test]
    fn every_truncation_and_any_flipped_bit_is_invalid_not_a_panic() {
        let bytes = frame_bytes(7, "svc", b"some data here");
        for cut in 1..bytes.len() {
            let mut reader = &bytes[..cut];
            assert!(
                matches!(
                    read_frame(&mut reader, cut as u64).unwrap(),
                    FrameRead::Invalid(_)
                ),
                "cut at {cut}"
            );
        }
        for at in 0..bytes.len() {
            let mut corrupt = bytes.clone();
            corrupt[at] ^= 0x10;
            let mut reader = &corrupt[..];
            assert!(
                matches!(
                    read_frame(&mut reader, corrupt.len() as u64).unwrap(),
                    FrameRead::Invalid(_)
                ),
                "bit flipped at byte {at}"
            );
        }
    }

    fn entry(key: &str, bytes: usize) -> StreamEntry {
        StreamEntry {
            partition_key: key.to_string(),
            data: Bytes::from(vec![7u8; bytes]),
        }
    }

    #[tokio::test]
    async fn a_batch_read_stops_at_its_byte_budget_and_the_next_read_goes_on_from_there() {
        let dir = tempfile::tempdir().unwrap();
        let stream = EmbeddedStream::open(dir.path(), 1).unwrap();
        stream
            .put_all((0..10).map(|_| entry("api", 1000)).collect())
            .await
            .unwrap();
        let shard = stream.shard_names().remove(0);

        // 2,500 bytes of budget: the third record crosses it and is the last one returned.
        let first = stream.read_batch(&shard, None, 1000, 2500).await.unwrap();
        assert_eq!(first.len(), 3);
        let next = stream
            .read_batch(&shard, first.last().map(|r| &r.sequence_number), 1000, 2500)
            .await
            .unwrap();
        assert_eq!(next.len(), 3);
        assert!(next[0].sequence_number > first[2].sequence_number);

        // A record larger than the whole budget still comes out, alone: a shard never stalls.
        let one = stream.read_batch(&shard, None, 1000, 10).await.unwrap();
        assert_eq!(one.len(), 1);
        // The record count still bounds the batch, and the port's read has no byte budget.
        assert_eq!(
            stream
                .read_batch(&shard, None, 2, usize::MAX)
                .await
                .unwrap()
                .len(),
            2
        );
        assert_eq!(stream.read(&shard, None, 1000).await.unwrap().len(), 10);
    }

    /// Polls until `shard`'s consumer lag exceeds `bound` (the records are waiting).
    async fn wait_lag_over(stream: &EmbeddedStream, shard: &str, bound: Duration) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while stream.consumer_lag(shard).unwrap() <= bound {
            assert!(std::time::Instant::now() < deadline, "the lag never grew");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test]
    async fn a_shard_behind_its_bound_refuses_appends_to_it_alone_until_the_consumer_catches_up() {
        let dir = tempfile::tempdir().unwrap();
        let stream = EmbeddedStream::open(dir.path(), 2).unwrap();
        let shards = stream.shard_names();
        // Two partition keys on different shards.
        let lagging_key = "svc-0".to_string();
        let lagging = stream.shard_of(&lagging_key).to_string();
        let other_key = (1..100)
            .map(|i| format!("svc-{i}"))
            .find(|k| stream.shard_of(k) != lagging)
            .unwrap();
        assert!(shards.contains(&lagging));

        // Off by default: nothing is ever refused.
        stream.put_all(vec![entry(&lagging_key, 10)]).await.unwrap();
        let bound = Duration::from_millis(5);
        wait_lag_over(&stream, &lagging, bound).await;
        stream.put_all(vec![entry(&lagging_key, 10)]).await.unwrap();

        stream.set_max_consumer_lag(Some(bound));
        wait_lag_over(&stream, &lagging, bound).await;
        let refused = stream
            .put_all(vec![entry(&other_key, 10), entry(&lagging_key, 10)])
            .await;
        match refused {
            Err(StreamError::Unavailable(reason)) => assert!(
                reason.contains("the aggregator is") && reason.contains(&lagging),
                "{reason}"
            ),
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Nothing of the refused call was written, on either shard.
        let records = stream.read(&lagging, None, 1000).await.unwrap();
        assert_eq!(records.len(), 2);
        let other = stream.shard_of(&other_key).to_string();
        assert!(stream.read(&other, None, 1000).await.unwrap().is_empty());
        // The other shard is not held back.
        stream.put_all(vec![entry(&other_key, 10)]).await.unwrap();

        // Processing (not yet a durable checkpoint) lifts it.
        stream.mark_consumed(&lagging, &records[1].sequence_number);
        assert_eq!(stream.consumer_lag(&lagging), Some(Duration::ZERO));
        stream.put_all(vec![entry(&lagging_key, 10)]).await.unwrap();

        // After a restart, records past the checkpoint wait from the restart on.
        drop(stream);
        let stream = EmbeddedStream::open(dir.path(), 2).unwrap();
        stream.set_max_consumer_lag(Some(bound));
        wait_lag_over(&stream, &lagging, bound).await;
        assert!(stream.put_all(vec![entry(&lagging_key, 10)]).await.is_err());
        let records = stream.read(&lagging, None, 1000).await.unwrap();
        stream
            .checkpoint(&lagging, &records.last().unwrap().sequence_number)
            .unwrap();
        assert_eq!(stream.consumer_lag(&lagging), Some(Duration::ZERO));
        stream.put_all(vec![entry(&lagging_key, 10)]).await.unwrap();
    }
}
