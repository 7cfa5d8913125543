"""MapInfra: a per-item cached map on the execution engine."""
