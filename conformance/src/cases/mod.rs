//! The cases, one public async function each, generic over the store. Each takes a fresh,
//! empty store and panics with a message naming the broken promise.

mod bounds;
mod changes;
mod concurrency;
mod dashboards;
mod deferrals;
mod dispatch;
mod engine;
mod enrollments;
mod mailbox_waits;
mod pace;
mod plans;
mod production;
mod records;
mod tenancy;
mod waits;

pub use bounds::*;
pub use changes::*;
pub use concurrency::*;
pub use dashboards::*;
pub use deferrals::*;
pub use dispatch::*;
pub use engine::*;
pub use enrollments::*;
pub use mailbox_waits::*;
pub use pace::*;
pub use plans::*;
pub use production::*;
pub use records::*;
pub use tenancy::*;
pub use waits::*;
