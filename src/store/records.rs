//! Domain operations over any [`super::Backend`]. (Being written.)
