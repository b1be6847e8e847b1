//! `nowcast topics plan|apply` (in progress).
