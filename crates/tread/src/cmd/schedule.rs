//! `tread schedule …`: schedule expressions checked and previewed on this
//! machine, with the same answer as `GET /api/schedules/next`.

use clap::Subcommand;
use tread_pipeline::preview::{DEFAULT_FIRES, after_or_now, preview};

/// `tread schedule …`.
#[derive(Debug, Subcommand)]
pub enum ScheduleCmd {
    /// The next fire times of an EventBridge expression (`rate(...)`,
    /// `cron(...)`, `at(...)`), in UTC with the local time beside; the
    /// parser's message when it is invalid.
    Next {
        /// The expression, e.g. 'cron(0 3 ? * MON-FRI *)'.
        expression: String,
        /// How many fire times (1-100).
        #[arg(short = 'n', long = "count", default_value_t = DEFAULT_FIRES)]
        count: usize,
        /// Start after this time (RFC 3339) instead of now; a `rate(...)`
        /// counts from here.
        #[arg(long)]
        after: Option<String>,
        /// Print the API's JSON answer.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `tread schedule …`.
pub fn schedule(cmd: ScheduleCmd) -> anyhow::Result<()> {
    let ScheduleCmd::Next {
        expression,
        count,
        after,
        json,
    } = cmd;
    let after = after_or_now(after.as_deref())?;
    let preview = preview(&expression, after, count)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&preview)?);
        return Ok(());
    }
    println!(
        "{}: next fire times after {}",
        preview.expression, preview.after
    );
    println!("{:<22}  LOCAL", "UTC");
    for fire in &preview.fires {
        println!("{:<22}  {}", fire.utc, fire.local);
    }
    if preview.fires.len() < count {
        println!("(no more fires)");
    }
    Ok(())
}
