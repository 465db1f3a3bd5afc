//! Repairs: rebuild the index from pack headers, salvage damaged packs.
