"""`monitorctl serve`: Prometheus metrics, health probes and a dashboard beside the database
(docs/metrics.md, docs/dashboard.md). Built on monitorctl.api, like the CLI: no SQL of its own."""
