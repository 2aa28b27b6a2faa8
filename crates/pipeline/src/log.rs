//! Step logs: one file per step of a run, every line passed through a
//! redactor so that the pipeline's S3 keys never reach the disk.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where a run's step logs live: `<runs dir>/<run id>/<index>-<kind>.log`.
pub fn step_log_path(runs_dir: &Path, run: i64, index: i64, kind: &str) -> PathBuf {
    runs_dir
        .join(run.to_string())
        .join(format!("{index}-{kind}.log"))
}

/// What replaces a secret in a log.
pub const REDACTED: &str = "[redacted]";

/// An open step log.
pub struct StepLog {
    file: Mutex<std::fs::File>,
    secrets: Vec<String>,
    last_error: Mutex<Option<String>>,
}

impl StepLog {
    /// Creates the log file (and its run directory), redacting `secrets`.
    pub fn create(path: &Path, secrets: Vec<String>) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            file: Mutex::new(file),
            secrets: secrets.into_iter().filter(|s| !s.is_empty()).collect(),
            last_error: Mutex::new(None),
        })
    }

    /// Appends one line, secrets replaced.
    pub fn line(&self, text: &str) {
        let mut clean = text.trim_end_matches(['\n', '\r']).to_string();
        for secret in &self.secrets {
            clean = clean.replace(secret.as_str(), REDACTED);
        }
        if clean.contains("error") {
            *lock(&self.last_error) = Some(clean.clone());
        }
        let mut file = lock(&self.file);
        // A log that cannot be written must not fail the step it records.
        let _ = writeln!(file, "{clean}");
    }

    /// The last line that mentioned an error, to explain a failed step.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The most of a step's log the catalog keeps for other daemons: its end,
/// where a failure is told.
pub const KEPT_LOG_BYTES: u64 = 1 << 20;

/// A step's log as the catalog keeps it for every daemon: the file's last
/// [`KEPT_LOG_BYTES`] at most, from a line's start, while the step runs
/// and once it ended.
#[derive(Debug, Default, PartialEq)]
pub struct KeptLog {
    /// The bytes of the file before `text`, left out.
    pub skipped: u64,
    /// The file from byte `skipped` on.
    pub text: String,
}

impl KeptLog {
    /// Reads the end of the log at `path` (nothing if there is none yet);
    /// with `whole_lines`, without a last line still being written.
    pub fn read(path: &Path, whole_lines: bool) -> std::io::Result<Self> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e),
        };
        let cut = file.metadata()?.len().saturating_sub(KEPT_LOG_BYTES);
        file.seek(SeekFrom::Start(cut))?;
        let mut bytes = Vec::new();
        file.take(KEPT_LOG_BYTES).read_to_end(&mut bytes)?;
        // After a newline: a character's boundary.
        let from = match cut {
            0 => 0,
            _ => bytes
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |n| n + 1),
        };
        if whole_lines {
            bytes.truncate(bytes.iter().rposition(|&b| b == b'\n').map_or(0, |n| n + 1));
        }
        let text = String::from_utf8_lossy(bytes.get(from..).unwrap_or_default()).into_owned();
        Ok(Self {
            skipped: cut + from as u64,
            text,
        })
    }

    /// What a reader at byte `offset` of the file gets from the kept part,
    /// and the offset to ask from next; a reader behind the kept part is
    /// told what it misses.
    pub fn from_offset(&self, offset: u64) -> (String, u64) {
        let end = self.skipped + self.text.len() as u64;
        let Some(start) = offset.checked_sub(self.skipped) else {
            let note = format!(
                "[tread] bytes {offset} to {} of this log are left out here; the whole log is in the runs directory of the daemon that ran the step\n",
                self.skipped
            );
            return (note + &self.text, end);
        };
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        let rest = self.text.get(start..).unwrap_or_default().to_string();
        (rest, end.max(offset))
    }
}

/// Reads a log from byte `offset`: the text and the offset to ask from next.
pub fn read_from(path: &Path, offset: u64) -> std::io::Result<(String, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((String::new(), offset)),
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    // Only whole lines, so a reader never sees half a line twice.
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    bytes.truncate(whole);
    let next = offset + whole as u64;
    Ok((String::from_utf8_lossy(&bytes).into_owned(), next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_log_is_kept_by_its_end_from_a_line_start() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("1-run.log");
        let line = "épreuve: a line of a long log\n";
        let lines = KEPT_LOG_BYTES as usize / line.len() + 100;
        let whole = line.repeat(lines) + "the last line\n";
        std::fs::write(&path, &whole)?;
        let kept = KeptLog::read(&path, false)?;
        assert!(kept.text.len() as u64 <= KEPT_LOG_BYTES);
        assert_eq!(&whole[kept.skipped as usize..], kept.text, "the file's end");
        assert!(kept.text.starts_with("épreuve"), "from a line's start");

        let (behind, next) = kept.from_offset(0);
        assert!(
            behind.starts_with("[tread] bytes 0 to "),
            "says what was left out: {}",
            &behind[..80]
        );
        assert!(behind.ends_with("the last line\n"));
        assert_eq!(next, whole.len() as u64);
        let (none, same) = kept.from_offset(next);
        assert_eq!((none.as_str(), same), ("", next));

        std::fs::write(&path, "short\nhalf a li")?;
        assert_eq!(
            KeptLog::read(&path, true)?.text,
            "short\n",
            "a line being written waits"
        );
        assert_eq!(KeptLog::read(&path, false)?.text, "short\nhalf a li");
        assert_eq!(
            KeptLog::read(&dir.path().join("none.log"), true)?,
            KeptLog::default()
        );
        Ok(())
    }

    #[test]
    fn a_follower_of_the_kept_log_gets_each_line_once() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("1-run.log");
        std::fs::write(&path, "epoch 1\nepo")?;
        let (first, next) = KeptLog::read(&path, true)?.from_offset(0);
        std::fs::write(&path, "epoch 1\nepoch 2\n")?;
        let (second, _) = KeptLog::read(&path, true)?.from_offset(next);
        assert_eq!(
            (first.as_str(), second.as_str()),
            ("epoch 1\n", "epoch 2\n")
        );
        Ok(())
    }

    #[test]
    fn secrets_never_reach_the_file_and_reads_resume_at_line_ends() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = step_log_path(dir.path(), 7, 1, "run");
        let log = StepLog::create(&path, vec!["SECRETKEY".into(), "AKID".into()])?;
        log.line("key AKID secret SECRETKEY\n");
        log.line("error: nothing");
        let (text, next) = read_from(&path, 0)?;
        assert_eq!(text, "key [redacted] secret [redacted]\nerror: nothing\n");
        assert!(!std::fs::read_to_string(&path)?.contains("SECRETKEY"));
        assert_eq!(log.last_error().as_deref(), Some("error: nothing"));
        log.line("more");
        let (rest, _) = read_from(&path, next)?;
        assert_eq!(rest, "more\n");
        Ok(())
    }
}
