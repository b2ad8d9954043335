"""Running a config from the command line: prepare the data and model, run the strategy's phases as stages (each
reused when its output exists), compare strategies, and what a run keeps on disk (inputs, metrics, checkpoints)."""
