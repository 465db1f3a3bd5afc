//! Repository checks: structure (snapshots, trees, index, packs) and data (--read-data).
