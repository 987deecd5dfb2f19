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

use promql_parser::label::Matchers;

/// What `eval` reads: the samples of an instant, and the points of a window ending there.
/// The alert engine's `History` is one (its latest evaluation); the query history's view at
/// a chosen instant is another.
pub trait Source {
    /// The instant evaluated at, in seconds on the source's clock.
    fn now(&self) -> f64;
    /// The sample at `now` of every series the selector matches.
    fn instant(&self, name: Option<&str>, matchers: &Matchers) -> Vec<Sample>;
    /// The points in `(now - range, now]` of every series the selector matches.
    fn range<'a>(
        &'a self,
        name: Option<&str>,
        matchers: &Matchers,
        range: f64,
    ) -> Vec<(&'a Labels, Vec<(f64, f64)>)>;
}
