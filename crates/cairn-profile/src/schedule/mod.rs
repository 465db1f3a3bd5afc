//! Schedules: systemd, launchd and cron jobs. (to be written)
