"""The coordination sensor and its trigger."""
