"""System plumbing of the service: systemd readiness and watchdog (``notify``), stop signals
(``signals``), and restarting a crashed stage with backoff (``supervise``)."""
