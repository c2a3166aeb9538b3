"""Sample agents that send their traces to halo_nb (importable from the repository root)."""
