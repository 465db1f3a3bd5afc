//! Key management on an open repository: list, add, remove and change passwords.

use super::Repository;

impl Repository {}
