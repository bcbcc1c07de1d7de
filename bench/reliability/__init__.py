"""Long-running reliability harnesses: kill-and-resume of ``cnnkit train``, and reader fuzzers."""
