//! The conformance suite against PostgreSQL: one test per case, each on a fresh schema of
//! its own (dropped when the case ends). Needs a server: `DATABASE_URL`, or the local one at
//! `postgres://postgres@127.0.0.1:5432/test`.

mod support;

sequence_conformance::conformance_tests!(support::fresh_store);
