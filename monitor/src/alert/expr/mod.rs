//! A PromQL subset evaluated over the daemon's own samples: selectors with matchers,
//! rate/increase/delta and `*_over_time` over a window, sum/avg/min/max/count by or
//! without labels, histogram_quantile, arithmetic, comparisons and set operators between
//! vectors and scalars. Parsing is `promql-parser`'s; `check` rejects what `eval` cannot do
//! before a rule is accepted.

pub mod check;
pub mod eval;
pub mod functions;
pub mod history;
pub mod series;

pub use history::History;
pub use series::{Labels, Sample};
