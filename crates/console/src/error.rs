//! What can go wrong while rendering a page or acting on the user's behalf.

use http::StatusCode;

/// A console failure, shown to the person as a page with a way back.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The API refused or failed: its status and its message.
    #[error("{message}")]
    Api {
        /// The API's status.
        status: StatusCode,
        /// The API's message.
        message: String,
    },
    /// No such page.
    #[error("{0} does not exist")]
    NotFound(String),
    /// A request the console cannot act on, with what to change.
    #[error("{0}")]
    Invalid(String),
    /// A form came without this session's form token: a request made by
    /// another site, or a page older than the session.
    #[error(
        "this form is older than your session or was sent by another site; reload the page and try again"
    )]
    Forged,
    /// A template or request could not be built (a bug, logged).
    #[error("the console failed: {0}")]
    Internal(String),
}

impl ConsoleError {
    /// The status of the page that shows it.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Api { status, .. } => *status,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::Forged => StatusCode::FORBIDDEN,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}
