"""`myllm train` and `myllm eval`: set-up, loop, schedule, resume, memory, signals, evaluation."""
