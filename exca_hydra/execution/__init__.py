"""Execution: plan the jobs of a launch (status read once), then one engine submits the ones to run
to a backend (in-process, forked local processes, submitit) and collects their outcomes."""
