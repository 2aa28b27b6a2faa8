//! Per-epoch figures, and where they are reported while training runs.

use serde::{Deserialize, Serialize};
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// Figures of one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's images.
    pub loss: f64,
    /// Training accuracy over the epoch's images.
    pub accuracy: f64,
    /// Images trained on.
    pub images: usize,
    /// Wall time of the epoch.
    pub seconds: f64,
    /// Images per second.
    pub images_per_s: f64,
    /// Learning rate at the epoch's last step.
    #[serde(default)]
    pub learning_rate: f64,
    /// Mean loss on the validation part, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_loss: Option<f64>,
    /// Accuracy on the validation part, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_accuracy: Option<f64>,
}

/// One optimisation step, as reported while training.
#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Step within the epoch, from 1.
    pub step: usize,
    /// Steps in the epoch.
    pub steps: usize,
    /// Loss of this step's batch.
    pub loss: f32,
    /// Images in this step's batch.
    pub images: usize,
    /// Images per second over the epoch so far.
    pub images_per_s: f64,
}

/// Receives training progress.
pub trait Progress {
    /// A run started that will write model version `version`.
    fn started(&mut self, _version: &str) {}
    /// A step finished.
    fn step(&mut self, report: &StepReport);
    /// An epoch finished.
    fn epoch(&mut self, metrics: &EpochMetrics);
    /// Something a person watching should read (the data found, early
    /// stopping).
    fn note(&mut self, text: &str);
}

/// Progress on the console: a bar per epoch with loss, images/s and ETA on a
/// terminal; a timestamped line per step otherwise (logs, CI, pipelines),
/// like the recipe's notebook prints.
pub struct ConsoleProgress {
    bar: Option<indicatif::ProgressBar>,
    terminal: bool,
}

impl ConsoleProgress {
    /// Progress on standard error.
    pub fn new() -> Self {
        Self {
            bar: None,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn bar(&mut self, report: &StepReport) -> &indicatif::ProgressBar {
        self.bar.get_or_insert_with(|| {
            let bar = indicatif::ProgressBar::new(report.steps as u64);
            let style = indicatif::ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style.progress_chars("=> "));
            bar.set_prefix(report.epoch.to_string());
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        })
    }
}

impl Default for ConsoleProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for ConsoleProgress {
    fn step(&mut self, r: &StepReport) {
        if self.terminal {
            let bar = self.bar(r);
            bar.set_position(r.step as u64);
            bar.set_message(format!("loss {:.4} {:.1} img/s", r.loss, r.images_per_s));
        } else {
            let _ = writeln!(
                std::io::stderr(),
                "{} [epoch {}, step {}/{}] loss {:.4} ({:.1} img/s)",
                crate::clock::now_rfc3339(),
                r.epoch,
                r.step,
                r.steps,
                r.loss,
                r.images_per_s
            );
        }
    }

    fn epoch(&mut self, m: &EpochMetrics) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let validation = match m.validation_accuracy {
            Some(a) => format!(", validation {:.2} %", a * 100.0),
            None => String::new(),
        };
        let _ = writeln!(
            std::io::stderr(),
            "epoch {}: loss {:.4}, accuracy {:.2} %{validation}, lr {:.2e}, {} images in {:.1} s ({:.1} img/s)",
            m.epoch,
            m.loss,
            m.accuracy * 100.0,
            m.learning_rate,
            m.images,
            m.seconds,
            m.images_per_s
        );
    }

    fn note(&mut self, text: &str) {
        let _ = writeln!(std::io::stderr(), "{text}");
    }
}
