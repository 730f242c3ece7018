//! Forecasts: the `forecast` query over opportunities (per period, owner
//! and team tree), quotas per user and period with attainment, and
//! managers' adjustments of forecast figures kept as history.

pub mod adjustments;
pub mod periods;
pub mod quotas;
pub mod report;
