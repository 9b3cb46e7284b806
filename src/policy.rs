//! Route policies (the lead fills this in).

pub mod path;
