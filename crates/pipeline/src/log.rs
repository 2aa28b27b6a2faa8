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
pub const KEPT_LOG_BYTES: usize = 1 << 20;

/// A finished step's log as the catalog keeps it: the file's last
/// [`KEPT_LOG_BYTES`], from a line's start, saying what was left out.
pub fn kept_text(path: &Path) -> std::io::Result<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(e),
    };
    if text.len() <= KEPT_LOG_BYTES {
        return Ok(text);
    }
    let cut = text.len() - KEPT_LOG_BYTES;
    // After a newline: a character's boundary.
    let start = text.as_bytes()[cut..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |n| cut + n + 1);
    Ok(format!(
        "[tread] the first {start} bytes are left out here; the whole log is {} on the daemon that ran the step\n{}",
        path.display(),
        &text[start..]
    ))
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
        let lines = KEPT_LOG_BYTES / line.len() + 100;
        std::fs::write(&path, line.repeat(lines) + "the last line\n")?;
        let kept = kept_text(&path)?;
        assert!(kept.len() <= KEPT_LOG_BYTES + 200, "{}", kept.len());
        assert!(
            kept.starts_with("[tread] the first "),
            "says what was left out"
        );
        assert!(kept.ends_with("the last line\n"));
        let body = kept.split_once('\n').map(|(_, b)| b).unwrap_or_default();
        assert!(body.starts_with("épreuve"), "from a line's start");
        std::fs::write(&path, "short\n")?;
        assert_eq!(kept_text(&path)?, "short\n");
        assert_eq!(kept_text(&dir.path().join("none.log"))?, "");
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
