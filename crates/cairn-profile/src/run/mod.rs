//! The profile run flow. (to be written)
