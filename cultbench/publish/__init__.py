"""Publishing: the leaderboard and its page, the study of a sweep with its statistics and
charts, and alignments exported as PEFT adapters."""
