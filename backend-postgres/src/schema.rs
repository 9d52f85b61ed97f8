//! A store in a schema of its own: for hosts that keep the engine's tables apart from
//! theirs, and for runs that need a fresh, empty store (simulations, tests).

use std::str::FromStr;
use std::time::Duration as StdDuration;

use sequence_core::store::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use crate::error::Db;
use crate::PostgresStore;

/// The longest schema name PostgreSQL keeps (`NAMEDATALEN - 1`).
const MAX_SCHEMA_NAME: usize = 63;

/// Why a schema name is refused, if it is: only lower-case letters, digits and `_`, not
/// starting with a digit, at most 63 bytes, so that the name is safe to quote into DDL.
fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let valid = !schema.is_empty()
        && schema.len() <= MAX_SCHEMA_NAME
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "schema {schema:?}: lower-case letters, digits and `_` only, not starting with a \
             digit, at most {MAX_SCHEMA_NAME} bytes"
        )))
    }
}

impl PostgresStore {
    /// Connect to the database at `url` and keep every table in `schema`, created when it
    /// does not exist (the pool's connections use it as their `search_path`). Run
    /// [`PostgresStore::migrate`] once to create the tables in it.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a schema name other than lower-case letters, digits and
    /// `_`; [`StoreError::Backend`] when the URL is invalid or no server answers in time.
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        check_schema_name(schema)?;
        let options = PgConnectOptions::from_str(url).db()?;
        let mut admin = options.connect().await.db()?;
        // The name was checked above: it cannot close the quotes.
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .execute(&mut admin)
            .await
            .db()?;
        admin.close().await.db()?;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(StdDuration::from_secs(10))
            .connect_with(options.options([("search_path", schema)]))
            .await
            .db()?;
        Ok(Self::from_pool(pool))
    }

    /// Drop `schema` and everything in it, then close the pool: the end of a run that
    /// used [`PostgresStore::connect_in_schema`] for a fresh store.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a schema name [`connect_in_schema`] would refuse;
    /// [`StoreError::Backend`] when the server refuses.
    ///
    /// [`connect_in_schema`]: PostgresStore::connect_in_schema
    pub async fn drop_schema(self, schema: &str) -> Result<(), StoreError> {
        check_schema_name(schema)?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(self.pool())
            .await
            .db()?;
        self.pool().close().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_that_could_break_out_of_quotes_are_refused() {
        for good in ["simulate_1234_5678", "engine", "a1_b2"] {
            assert!(check_schema_name(good).is_ok(), "{good}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "1abc",
            "Engine",
            "a\"; DROP TABLE x; --",
            "a-b",
            long.as_str(),
        ] {
            assert!(
                matches!(check_schema_name(bad), Err(StoreError::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}
