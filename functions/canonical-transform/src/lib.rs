//! canonical-transform
