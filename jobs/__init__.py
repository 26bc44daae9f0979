"""Asset-job selections, schedules and backfill helpers."""
