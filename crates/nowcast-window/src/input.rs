//! How an [`Input`] feeds each kind of aggregation, and the (time, seq, value) cell that
//! orders events for `last` / `last_n`.

use nowcast_core::Millis;

use crate::hll;
use crate::Input;

/// An event's value for `last` / `last_n`, ordered by `(time, seq)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cell {
    pub(crate) time: Millis,
    pub(crate) seq: u64,
    pub(crate) value: f64,
}

impl Cell {
    /// The empty cell: older than any event (`seq` starts at 1).
    pub(crate) const EMPTY: Cell = Cell {
        time: Millis::MIN,
        seq: 0,
        value: 0.0,
    };

    pub(crate) fn newer_than(&self, o: &Cell) -> bool {
        (self.time, self.seq) > (o.time, o.seq)
    }
}

/// A numeric input: `Num` with a finite value. A `Hash` here is a caller bug (skipped).
pub(crate) fn num(input: Input) -> Option<f64> {
    match input {
        Input::Num(x) if x.is_finite() => Some(x),
        Input::Hash(_) => {
            debug_assert!(false, "Input::Hash passed to a numeric aggregation");
            None
        }
        _ => None,
    }
}

/// Whether the input feeds `count` / `time_since_last`.
pub(crate) fn present(input: Input) -> bool {
    match input {
        Input::Skip => false,
        Input::Num(x) => x.is_finite(),
        Input::Hash(_) => true,
    }
}

/// The mixed hash of a distinct-count input (a `Num` is hashed from its bits, `-0.0` as `0.0`).
pub(crate) fn distinct_hash(input: Input) -> Option<u64> {
    match input {
        Input::Hash(h) => Some(hll::mix(h)),
        Input::Num(x) if x.is_finite() => Some(hll::mix((x + 0.0).to_bits())),
        _ => None,
    }
}
