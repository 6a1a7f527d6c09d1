"""Developer and test tool: simulated iOS and Android devices that attest like real ones."""
