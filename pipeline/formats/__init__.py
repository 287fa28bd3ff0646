"""Raw sources -> the canonical interim tables (interim.py), one reader module per source."""
