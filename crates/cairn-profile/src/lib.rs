//! Automation layer: profiles, secrets, hooks, schedules and monitors. Not yet implemented.
