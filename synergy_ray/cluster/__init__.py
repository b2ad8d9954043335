"""Running on a Ray cluster: connecting to Ray, the run's placement group from the pure plan, and the commands
that submit, follow and plan jobs."""
