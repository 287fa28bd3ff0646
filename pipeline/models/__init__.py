"""Item encoders, user encoders and the ODMT model (paper section 3)."""
