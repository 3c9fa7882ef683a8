//! An error as a cloud API reports it: AWS's code and message.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An error as a cloud API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudError {
    pub code: String,
    pub message: String,
}

impl CloudError {
    pub fn new(code: &str, message: impl Into<String>) -> CloudError {
        CloudError {
            code: code.to_string(),
            message: message.into(),
        }
    }
}

/// Printed for people: a hostile endpoint's message cannot carry terminal
/// escapes into the output.
impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            super::words::clean(&self.code),
            super::words::clean(&self.message)
        )
    }
}

impl std::error::Error for CloudError {}
