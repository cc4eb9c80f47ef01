//! freightctl
