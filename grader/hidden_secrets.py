"""A fresh secret for each graded submission: the only source of its hidden inputs.

Every time a submission is graded (a first grading, a resubmission, a `--regrade`) the
coordinator draws a new secret of SECRET_BYTES; the lab turns it into that run's hidden
inputs (grader.plugin.Lab.hidden_inputs) and judges from it again afterwards. The secret
itself never leaves the coordinating process: a kernel receives only the inputs, so all a
student can learn in one run is inputs that no later run uses.

Secrets are random, unless the instructor gives a repeat key (`autograde --secret-key`):
then a submission's secret is an HMAC of (student id, notebook digest, attempt), so that
the same submissions graded twice with the same key give the same bytes (tests, a
reproduced batch) while every distinct grading still gets a secret of its own. The key is
then what an attacker would need: it is the instructor's to keep, never shown to students.
"""

import hashlib
import hmac
import json
import secrets

from grader.errors import GraderError

SECRET_BYTES = 16  # 128 bits: no search over secrets is feasible
MIN_KEY_BYTES = 16


class SecretKeyError(GraderError, ValueError):
    """A repeat key that is not hexadecimal or too short to be a secret."""


def parse_secret_key(text):
    """The bytes of a repeat key written in hexadecimal (at least 32 digits)."""
    try:
        key = bytes.fromhex(text)
    except ValueError as error:
        raise SecretKeyError("the secret key must be written in hexadecimal digits") from error
    if len(key) < MIN_KEY_BYTES:
        raise SecretKeyError(f"the secret key must hold at least {MIN_KEY_BYTES} bytes"
                             f" ({2 * MIN_KEY_BYTES} hexadecimal digits)")
    return key


def grading_secret(key, *, student_id, digest, attempt):
    """The secret of one grading: random without a key; with one, the same for the same
    (student, submission, attempt) and unrelated between any two of them."""
    if key is None:
        return secrets.token_bytes(SECRET_BYTES)
    message = json.dumps([student_id, digest, attempt]).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).digest()[:SECRET_BYTES]


def secret_number(secret):
    """The secret as one whole number, e.g. to seed numpy.random.default_rng."""
    return int.from_bytes(secret, "big")
