//! The hourglass binary.
