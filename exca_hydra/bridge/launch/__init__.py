"""The launch: compose, validate, plan, submit, collect and report the jobs of a sweep (the
exca sweeper and launchers both call ``launcher.launch_plan``)."""
