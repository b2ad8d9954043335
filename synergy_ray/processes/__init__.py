"""The operating-system side of a run's processes: peak memory and shared memory of a process tree, and making
sure a command leaves no process or /dev/shm file behind."""
