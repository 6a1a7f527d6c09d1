"""Android attestation: Key Attestation chains, attested-key signatures and Play Integrity."""
