"""SV1 error codes miners understand (slush's protocol description, "Error codes").

Pools agree on these numbers, and miners' firmware classifies rejects by them,
so every answer the proxy gives a miner itself uses one of them.
"""

OTHER = 20
JOB_NOT_FOUND = 21  # also "stale": the job is gone
DUPLICATE = 22
LOW_DIFFICULTY = 23
UNAUTHORIZED = 24
NOT_SUBSCRIBED = 25
