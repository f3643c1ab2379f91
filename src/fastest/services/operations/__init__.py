"""Running the service: the scheduled jobs, their maintenance work and the health checks.

Modules: `jobs` (the cron schedule and what each job runs); `maintenance` (purges of expired rows);
`health` (the `/health` checks).
"""
