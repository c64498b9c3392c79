//! Validated request values and the user model: parsing happens here, once, with no IO.

mod credentials;
mod user;

pub use credentials::{DisplayName, Email, Password};
pub use user::{Role, User, UserId};
