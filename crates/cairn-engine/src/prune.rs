//! Prune: plan from the index which packs to keep, repack or delete, then execute crash-safely.
