"""Local servers for the network tests (placeholder until the transport work lands)."""
