"""Argon2id with OWASP's minimum parameters (m=19 MiB, t=2, p=1).

Django's defaults (m=100 MiB, p=8) cost ~0.2 s per login on a 2-core host; OWASP's
floor keeps the same class of protection at a cost a busy IdP can afford.
"""

from django.contrib.auth.hashers import Argon2PasswordHasher


class VigilArgon2PasswordHasher(Argon2PasswordHasher):
    algorithm = "argon2"
    time_cost = 2
    memory_cost = 19456
    parallelism = 1
