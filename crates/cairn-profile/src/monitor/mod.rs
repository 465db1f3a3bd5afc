//! Monitors: HTTP hooks, Healthchecks, status file, Prometheus. (to be written)
