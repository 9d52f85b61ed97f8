//! Store errors from sqlx errors: the cause kept as the error's source, and the two
//! SQLSTATEs a unit of work is retried on.

use sequence_core::store::StoreError;

/// SQLSTATE `serialization_failure`.
const SERIALIZATION_FAILURE: &str = "40001";
/// SQLSTATE `deadlock_detected`.
const DEADLOCK_DETECTED: &str = "40P01";
/// SQLSTATE `unique_violation`.
const UNIQUE_VIOLATION: &str = "23505";

/// A backend failure caused by a sqlx error, kept as the source.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// `.db()?` for sqlx results.
pub(crate) trait Db<T> {
    /// The result with its error made a [`StoreError::Backend`].
    fn db(self) -> Result<T, StoreError>;
}

impl<T> Db<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(db)
    }
}

/// The SQLSTATE of a database error behind `e`, if it is one.
fn sqlstate(e: &StoreError) -> Option<String> {
    let StoreError::Backend(source) = e else {
        return None;
    };
    let sqlx_error = source.downcast_ref::<sqlx::Error>()?;
    Some(sqlx_error.as_database_error()?.code()?.into_owned())
}

/// Whether the unit of work failed only because it raced another (a serialization failure
/// or a deadlock): then it is run again from the start.
pub(crate) fn is_transient(e: &StoreError) -> bool {
    sqlstate(e).is_some_and(|code| code == SERIALIZATION_FAILURE || code == DEADLOCK_DETECTED)
}

/// Whether `e` is a unique violation.
pub(crate) fn is_unique_violation(e: &StoreError) -> bool {
    sqlstate(e).is_some_and(|code| code == UNIQUE_VIOLATION)
}

/// A document or a name that does not (de)serialize (it never happens for what this store
/// wrote itself).
pub(crate) fn encode(e: serde_json::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}
