//! The Redis backend. (Being written.)
