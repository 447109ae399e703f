//! Hourglass report API: the dashboard's read path (`POST /api/v1/report`,
//! `POST /api/v1/report/realtime`, `GET /api/v1/metadata`), by the definitions of
//! ANALYTICS.md.
//!
//! A request is parsed and checked ([`request`]), its ranges resolved in its time zone
//! ([`time`]), and decomposed into queries ([`report`]). Each query is answered as partial
//! aggregates ([`aggregate`]) over a sessionized window of the tenant's events
//! ([`dataset`]), whose edges are widened until every session touching the range is whole,
//! so the answer equals the batch definition of sessions. The response carries rows,
//! totals (computed, never summed), comparisons and time labels.

pub mod aggregate;
pub mod cache;
pub mod dataset;
pub mod dimension;
mod engine;
pub mod error;
pub mod facts;
pub mod filter;
pub mod metadata;
pub mod metric;
pub mod metrics;
pub mod planner;
pub mod report;
pub mod request;
pub mod rollups;
pub mod sketch;
pub mod time;

pub use engine::Engine;
pub use error::{Error, RequestError, Result};
pub use request::{ReportKind, ReportRequest, parse};
