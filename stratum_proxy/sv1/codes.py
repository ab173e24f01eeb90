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

# SV2 SubmitShares.Error codes (SRI mining_sv2 constants) -> the SV1 code a
# miner's firmware classifies the same way.  Unknown codes are "other" (spec
# §3.5: error codes are free-form).
_FROM_SV2 = {
    "stale-share": JOB_NOT_FOUND,
    "invalid-job-id": JOB_NOT_FOUND,
    "duplicate-share": DUPLICATE,
    "difficulty-too-low": LOW_DIFFICULTY,
    "invalid-channel-id": UNAUTHORIZED,
}


def from_sv2(error_code: str) -> int:
    return _FROM_SV2.get(error_code, OTHER)
