"""What ki2api tells its operators: request log lines, Prometheus metrics, the recent requests of the status page."""
